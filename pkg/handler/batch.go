package handler

import (
	"context"
	"maps"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// This file holds batching: sharing fetched records fairly between
// partitions, handling a batch concurrently, and rewinding what a batch did
// not reach.

// part is one partition's records waiting to be handled, in offset order.
type part struct {
	tp   TopicPartition
	recs []*kgo.Record
}

// share splits queue into a batch of about limit records, an equal share
// of each partition's, and the rest. Partitions stopped at a failed record
// are dropped from both: their records stay uncommitted.
func (c *Consumer) share(queue []part, limit int) (batch, rest []part) {
	c.mu.Lock()
	live := make([]part, 0, len(queue))
	for _, p := range queue {
		if _, stalled := c.stalled[p.tp]; !stalled {
			live = append(live, p)
		}
	}
	c.mu.Unlock()
	if len(live) == 0 {
		return nil, nil
	}
	each := max(1, limit/len(live))
	for _, p := range live {
		if len(p.recs) <= each {
			batch = append(batch, p)
			continue
		}
		batch = append(batch, part{p.tp, p.recs[:each]})
		rest = append(rest, part{p.tp, p.recs[each:]})
	}
	return batch, rest
}

// rewind hands records taken from kgo but not handled back to it, so that
// they are fetched again: by this member if it keeps the partition, by the
// next owner from the committed offset otherwise. left holds the first
// unhandled record of partitions a batch stopped early; queue the
// partitions' records no batch took yet.
func (c *Consumer) rewind(left map[TopicPartition]*kgo.Record, queue []part) {
	first := make(map[TopicPartition]*kgo.Record, len(left)+len(queue))
	for _, p := range queue {
		first[p.tp] = p.recs[0]
	}
	for tp, r := range left { // earlier than the queued records of tp
		first[tp] = r
	}
	rewind := map[string]map[int32]kgo.EpochOffset{}
	c.mu.Lock()
	for tp, r := range first {
		if _, stalled := c.stalled[tp]; stalled {
			continue // paused at its failed record, which stays uncommitted
		}
		if rewind[tp.Topic] == nil {
			rewind[tp.Topic] = map[int32]kgo.EpochOffset{}
		}
		rewind[tp.Topic][tp.Partition] = kgo.EpochOffset{Epoch: r.LeaderEpoch, Offset: r.Offset}
	}
	c.mu.Unlock()
	c.cl.SetOffsets(rewind)
}

// runBatch handles a batch: partitions concurrently, records of a
// partition in order. It returns when every partition is done, stopped
// early (shutdown or a waiting rebalance), or the shutdown timeout expired.
// Handled offsets are recorded for the next commit before it returns. It
// returns the first unhandled record of each partition stopped early.
func (c *Consumer) runBatch(ctx, hctx context.Context, parts []part, force <-chan struct{}) map[TopicPartition]*kgo.Record {
	if len(parts) == 0 {
		return nil
	}

	abort := func() bool { return c.stopping.Load() || c.rebalWant.Load() }
	var (
		wg        sync.WaitGroup
		sem       = make(chan struct{}, c.o.concurrency)
		leftMu    sync.Mutex
		leftovers = map[TopicPartition]*kgo.Record{}
	)
	// progress holds the last settled record of each partition; workers
	// store into it without a lock and flush publishes it for commits.
	progress := make(map[TopicPartition]*atomic.Pointer[kgo.Record], len(parts))
	for _, p := range parts {
		progress[p.tp] = new(atomic.Pointer[kgo.Record])
	}
	flush := func() {
		for tp, ap := range progress {
			if r := ap.Load(); r != nil {
				c.markDone(tp, r)
			}
		}
	}
	for _, p := range parts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			c.m.inFlight.Inc()
			defer c.m.inFlight.Dec()
			t := newTally(c.m.latency.bounds, time.Now())
			c.mu.Lock()
			t.runMax = max(c.runMax[p.tp], 1)
			c.mu.Unlock()
			defer func() {
				c.flushTally(p.tp.Topic, t)
				c.mu.Lock()
				if _, ok := c.owned[p.tp]; ok {
					c.runMax[p.tp] = t.runMax
				}
				c.mu.Unlock()
			}()
			prog := progress[p.tp]
			cd := newCallDeadline(hctx, c.o.callTimeout)
			defer cd.close()
			for _, r := range p.recs {
				if t.clock.Sub(t.lastFlush) >= tallyFlushEvery {
					c.flushTally(p.tp.Topic, t)
				}
				if abort() {
					leftMu.Lock()
					leftovers[p.tp] = r
					leftMu.Unlock()
					return
				}
				switch c.handle(hctx, cd, r, abort, t) {
				case outcomeDone:
					prog.Store(r)
				case outcomeStalled:
					return
				case outcomeInterrupted:
					leftMu.Lock()
					leftovers[p.tp] = r
					leftMu.Unlock()
					return
				}
			}
		}()
	}
	allDone := make(chan struct{})
	go func() { wg.Wait(); close(allDone) }()
	tick := time.NewTicker(c.o.commitInterval)
	defer tick.Stop()
wait:
	for {
		select {
		case <-allDone:
			break wait
		case <-force:
			break wait
		case <-tick.C:
			flush()
			c.commitPending(hctx, nil)
		}
	}
	flush()
	if c.stopping.Load() {
		c.commitPending(context.WithoutCancel(ctx), nil)
	}
	leftMu.Lock()
	defer leftMu.Unlock()
	return maps.Clone(leftovers)
}

// flushTally adds a worker's tally to the shared counters and metrics.
func (c *Consumer) flushTally(topic string, t *tally) {
	t.closeRun(c.m.latency.bounds, time.Now())
	if t.handled > 0 {
		c.handled.Add(t.handled)
		c.m.handledFor(topic).Add(float64(t.handled))
	}
	c.m.latency.add(t)
	t.reset()
	t.lastFlush = t.clock
}
