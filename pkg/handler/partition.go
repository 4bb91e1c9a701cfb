package handler

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"
)

// partition is one owned partition: the records polled for it and not yet
// handled, and how far its handled prefix reaches.
//
// The poll loop only appends to the queue and never waits for the
// handling, so the next poll overlaps with the work of the previous one.
// One goroutine (run) per partition takes the queue and handles its
// records in offset order. When a queue holds a full poll's worth the poll
// loop waits for the worker to take it (waitForRoom); if that takes longer
// than pauseAfter, because the handler is slow or stuck, it pauses
// fetching of the partition instead, so that the other partitions keep
// going, and the worker resumes it when it takes the queue. Paused
// partitions lose their buffered fetches inside franz-go without moving
// the fetch position, so nothing is skipped; this refetching is why a
// partition is not paused at once.
//
// A worker stops only when its partition is given up (revoked or lost),
// when it stalls, or at shutdown. Records it leaves behind are never
// committed: the next owner, or this member after a restart, reads them
// again from the committed offset.
type partition struct {
	tp TopicPartition
	c  *Consumer

	mu      sync.Mutex
	queue   []*kgo.Record // polled and not yet taken by the worker
	paused  bool          // fetching paused: queue full or stalled
	stalled bool

	wake     chan struct{} // capacity 1: the queue grew
	quit     chan struct{} // closed by stop
	stopOnce sync.Once
	stopped  atomic.Bool   // quit is closed; checked before every record
	exited   chan struct{} // closed when run returns

	// last is the last settled record: every record of the partition up
	// to and including it was handled or dead-lettered. The worker stores
	// it after each record; commits read it without stopping the worker.
	last atomic.Pointer[kgo.Record]
	// handled counts this partition's handled records for Stats. It is
	// written by the worker only, so the atomic add is not contended.
	handled atomic.Uint64
	// busy is set while the worker handles a chunk of records; the
	// in-flight gauge counts busy partitions.
	busy atomic.Bool

	committed int64 // next offset last committed; guarded by Consumer.commitMu

	handledCounter prometheus.Counter
}

func newPartition(c *Consumer, tp TopicPartition) *partition {
	return &partition{
		tp: tp, c: c,
		wake:           make(chan struct{}, 1),
		quit:           make(chan struct{}),
		exited:         make(chan struct{}),
		handledCounter: c.m.handledFor(tp.Topic),
	}
}

// pauseAfter is how long the poll loop waits for a full queue to be taken
// before it pauses fetching of the partition.
const pauseAfter = 50 * time.Millisecond

// push queues polled records and reports whether the queue is full. It
// drops them when the worker has stopped: the partition is being given up
// or is stalled, and the records stay uncommitted.
func (p *partition) push(recs []*kgo.Record) (full bool) {
	p.mu.Lock()
	if p.stalled || p.stopped.Load() {
		p.mu.Unlock()
		return false
	}
	p.queue = append(p.queue, recs...)
	full = p.fullLocked()
	p.mu.Unlock()
	select {
	case p.wake <- struct{}{}:
	default:
	}
	return full
}

func (p *partition) fullLocked() bool {
	return !p.paused && !p.stalled && len(p.queue) >= p.c.o.maxPollRecords
}

// pauseIfFull pauses fetching while the queue is still full. Pausing and
// resuming happen under mu so that the client sees them in the order the
// queue decided them.
func (p *partition) pauseIfFull() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.fullLocked() {
		p.paused = true
		p.c.cl.PauseFetchPartitions(map[string][]int32{p.tp.Topic: {p.tp.Partition}})
	}
}

func (p *partition) full() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.fullLocked()
}

// take swaps the queue for spare and resumes fetching if the queue was
// full.
func (p *partition) take(spare []*kgo.Record) []*kgo.Record {
	p.mu.Lock()
	defer p.mu.Unlock()
	recs := p.queue
	p.queue = spare
	if p.paused && !p.stalled {
		p.paused = false
		p.c.cl.ResumeFetchPartitions(map[string][]int32{p.tp.Topic: {p.tp.Partition}})
	}
	if len(recs) > 0 {
		select {
		case p.c.room <- struct{}{}:
		default:
		}
	}
	return recs
}

// stop asks the worker to return after the record it is handling.
func (p *partition) stop() {
	p.stopOnce.Do(func() {
		p.stopped.Store(true)
		close(p.quit)
	})
}

func (p *partition) abort() bool { return p.stopped.Load() || p.c.stopping.Load() }

// run is the partition's worker.
func (p *partition) run(hctx context.Context) {
	defer close(p.exited)
	c := p.c
	lat := c.m.latency.local()
	var spare []*kgo.Record
	for {
		select {
		case <-p.wake:
		case <-p.quit:
			return
		}
		for {
			recs := p.take(spare)
			if len(recs) == 0 {
				spare = recs
				break
			}
			select {
			case c.sem <- struct{}{}:
			case <-p.quit:
				return
			}
			more := p.handleChunk(hctx, recs, &lat)
			<-c.sem
			clear(recs) // let the records be collected
			spare = recs[:0]
			if !more {
				return
			}
		}
	}
}

// handleChunk handles recs in order. It reports false when the worker must
// stop: the partition is being given up, it stalled, or shutdown started.
func (p *partition) handleChunk(hctx context.Context, recs []*kgo.Record, lat *localLatency) bool {
	c := p.c
	p.busy.Store(true)
	var n int
	defer func() {
		p.busy.Store(false)
		if n > 0 {
			p.handledCounter.Add(float64(n))
		}
		lat.flush()
	}()
	clk := newCallClock(lat)
	for _, r := range recs {
		if p.abort() {
			clk.flush()
			return false
		}
		err := c.call(hctx, r)
		clk.tick()
		if err == nil {
			p.handled.Add(1)
			n++
			p.last.Store(r)
			continue
		}
		clk.flush()
		switch c.retry(hctx, p, r, err) {
		case outcomeDone:
			p.last.Store(r)
		case outcomeStalled:
			p.stall()
			return false
		case outcomeInterrupted:
			return false
		}
		clk = newCallClock(lat)
	}
	clk.flush()
	return true
}

// stall stops the partition at the record after last: its queue is
// dropped and fetching paused until the partition is given up.
func (p *partition) stall() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.stalled = true
	p.queue = nil
	if !p.paused {
		p.paused = true
		p.c.cl.PauseFetchPartitions(map[string][]int32{p.tp.Topic: {p.tp.Partition}})
	}
}

// resumeIfPaused resumes fetching of a partition that is given up, so that
// it fetches again if it comes back.
func (p *partition) resumeIfPaused() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.paused {
		p.paused = false
		p.c.cl.ResumeFetchPartitions(map[string][]int32{p.tp.Topic: {p.tp.Partition}})
	}
}
