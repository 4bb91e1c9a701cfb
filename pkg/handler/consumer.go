package handler

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"os"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// Func handles one record. Returning nil marks the record handled; its
// offset is committed once every earlier record of its partition is
// handled too. Returning an error (or panicking) retries the record.
//
// The context is not cancelled when shutdown starts, only when the
// shutdown timeout expires, so that in-flight work can finish.
type Func func(ctx context.Context, r *kgo.Record) error

// Headers added to a record written to the dead-letter topic. The original
// key, value and headers are kept.
const (
	HeaderOriginalTopic     = "lagscale.original.topic"
	HeaderOriginalPartition = "lagscale.original.partition"
	HeaderOriginalOffset    = "lagscale.original.offset"
	HeaderAttempts          = "lagscale.attempts"
	HeaderError             = "lagscale.error"
)

// TopicPartition names one partition.
type TopicPartition struct {
	Topic     string
	Partition int32
}

// StalledPartition is a partition that stopped at a record which failed
// every attempt while no dead-letter topic was configured. Nothing at or
// after Offset is committed until the partition moves to another member
// (which tries the record again) or the process restarts.
type StalledPartition struct {
	TopicPartition
	Offset int64
	Err    string
}

// Stats counts what a Consumer did since it was created.
type Stats struct {
	// Handled counts records the function returned nil for.
	Handled uint64
	// Failed counts records that failed every attempt.
	Failed uint64
	// DeadLettered counts records written to the dead-letter topic.
	DeadLettered uint64
	// Retries counts failed attempts that were tried again.
	Retries uint64
	// Stalled lists the partitions stopped right now.
	Stalled []StalledPartition
}

// Consumer consumes the configured topics in the configured group and
// calls a Func for every record. Create it with New; most programs call Run
// or Main instead.
type Consumer struct {
	fn       Func
	cfg      Config
	o        options
	log      logr.Logger
	m        *metrics
	gatherer prometheus.Gatherer

	handled, failed, deadLettered, retries atomic.Uint64

	ready     atomic.Bool
	started   atomic.Bool
	stopping  atomic.Bool // set when the run context is cancelled
	rebalWant atomic.Bool // a rebalance waits for the current batch

	cl *kgo.Client

	mu        sync.Mutex
	done      map[TopicPartition]kgo.EpochOffset // next offset after the handled prefix
	committed map[TopicPartition]int64
	stalled   map[TopicPartition]StalledPartition
	owned     map[TopicPartition]struct{}
	runMax    map[TopicPartition]int // a partition's tally.runMax, kept between batches

	commitMu sync.Mutex // serializes commits
}

// Run reads the environment (or WithConfig), joins the consumer group and
// calls fn for every record until ctx is cancelled. It then stops
// fetching, lets in-flight records finish within the shutdown timeout,
// commits what was handled, leaves the group and returns nil. It returns an
// error only when it cannot start.
func Run(ctx context.Context, fn Func, opts ...Option) error {
	c, err := New(fn, opts...)
	if err != nil {
		return err
	}
	return c.Run(ctx)
}

// New validates the configuration and builds a Consumer without
// connecting.
func New(fn Func, opts ...Option) (*Consumer, error) {
	if fn == nil {
		return nil, errors.New("handler: nil Func")
	}
	o := defaultOptions()
	for _, opt := range opts {
		opt(&o)
	}
	var cfg Config
	if o.cfg != nil {
		cfg = *o.cfg
		if err := cfg.Validate(); err != nil {
			return nil, fmt.Errorf("handler: %w", err)
		}
	} else {
		getenv := o.getenv
		if getenv == nil {
			getenv = os.Getenv
		}
		var err error
		if cfg, err = ConfigFromEnv(getenv); err != nil {
			return nil, fmt.Errorf("handler: %w", err)
		}
	}
	if o.httpAddr != nil {
		cfg.HTTPAddr = *o.httpAddr
	}
	log := logr.FromSlogHandler(slog.NewJSONHandler(os.Stderr, nil))
	if o.logger != nil {
		log = *o.logger
	}
	log = log.WithValues("group", cfg.Group)
	if cfg.Consumer != "" {
		log = log.WithValues("eventConsumer", cfg.Consumer)
	}
	reg, gatherer, private := o.registerer, o.gatherer, false
	if reg == nil {
		r := prometheus.NewRegistry()
		reg, gatherer, private = r, r, true
	}
	m, err := newMetrics(reg, private, cfg.Topics)
	if err != nil {
		return nil, fmt.Errorf("handler: registering metrics: %w", err)
	}
	return &Consumer{
		fn: fn, cfg: cfg, o: o, log: log, m: m, gatherer: gatherer,
		done:      map[TopicPartition]kgo.EpochOffset{},
		committed: map[TopicPartition]int64{},
		stalled:   map[TopicPartition]StalledPartition{},
		owned:     map[TopicPartition]struct{}{},
		runMax:    map[TopicPartition]int{},
	}, nil
}

// Config returns the configuration the Consumer runs with.
func (c *Consumer) Config() Config { return c.cfg }

// Stats returns the counters so far.
func (c *Consumer) Stats() Stats {
	s := Stats{
		Handled:      c.handled.Load(),
		Failed:       c.failed.Load(),
		DeadLettered: c.deadLettered.Load(),
		Retries:      c.retries.Load(),
	}
	c.mu.Lock()
	for _, sp := range c.stalled {
		s.Stalled = append(s.Stalled, sp)
	}
	c.mu.Unlock()
	return s
}

// Run consumes until ctx is cancelled; see the package-level Run. A
// Consumer runs once.
func (c *Consumer) Run(ctx context.Context) error {
	if c.started.Swap(true) {
		return errors.New("handler: Run called twice")
	}
	stopHTTP, err := c.serveHTTP()
	if err != nil {
		return err
	}
	defer stopHTTP()

	base, err := c.cfg.ClientOptions()
	if err != nil {
		return fmt.Errorf("handler: %w", err)
	}
	reset := kgo.NewOffset().AtStart()
	if c.cfg.AutoOffsetReset == ResetLatest {
		reset = kgo.NewOffset().AtEnd()
	}
	kopts := append(base,
		kgo.ConsumerGroup(c.cfg.Group),
		kgo.ConsumeTopics(c.cfg.Topics...),
		kgo.ConsumeResetOffset(reset),
		kgo.Balancers(kgo.CooperativeStickyBalancer()),
		kgo.DisableAutoCommit(),
		kgo.BlockRebalanceOnPoll(),
		kgo.OnPartitionsAssigned(c.onAssigned),
		kgo.OnPartitionsRevoked(c.onRevoked),
		kgo.OnPartitionsLost(c.onLost),
		kgo.OnPartitionsCallbackBlocked(func(context.Context, *kgo.Client) { c.rebalWant.Store(true) }),
		kgo.WithLogger(kgoLogger{c.log.WithName("kgo")}),
	)
	kopts = append(kopts, c.o.clientOpts...)
	cl, err := kgo.NewClient(kopts...)
	if err != nil {
		return fmt.Errorf("handler: creating Kafka client: %w", err)
	}
	c.cl = cl
	c.log.Info("Consuming", "topics", c.cfg.Topics, "brokers", c.cfg.Brokers, "deadLetterTopic", c.cfg.DeadLetterTopic)

	// hctx is what the handler function sees: it outlives ctx by the
	// shutdown timeout so that in-flight records can finish.
	hctx, hcancel := context.WithCancel(context.WithoutCancel(ctx))
	defer hcancel()
	force := make(chan struct{})
	finished := make(chan struct{})
	defer close(finished)
	go func() {
		select {
		case <-ctx.Done():
		case <-finished:
			return
		}
		c.stopping.Store(true)
		c.ready.Store(false)
		c.log.Info("Shutting down: finishing in-flight records", "timeout", c.o.shutdownTimeout.String())
		t := time.NewTimer(c.o.shutdownTimeout)
		defer t.Stop()
		select {
		case <-t.C:
			c.log.Info("Shutdown timeout expired: abandoning unfinished records, they stay uncommitted")
			close(force)
			hcancel()
		case <-finished:
		}
	}()

	// A poll takes everything kgo has buffered into queue, so that kgo
	// fetches the next records while these are handled; batches of at most
	// maxPollRecords, shared fairly between partitions, are then taken from
	// the queue. Rebalances stay blocked until the queue is empty, or until
	// a waiting rebalance cuts the work short: then everything not handled
	// is handed back to kgo (rewound) and the queue dropped.
	//
	// Commits run on this goroutine, between batches, at most once per
	// commit interval: a synchronous commit after every batch would cost a
	// broker round trip per maxPollRecords records. A poll waits no longer
	// than the time left until the next commit is due, so that offsets
	// handled just before the topic went quiet are committed within one
	// interval. Rebalances and shutdown commit at once (here, onRevoked).
	var queue []part
	lastCommit := time.Now()
	for {
		if len(queue) == 0 {
			pctx, pcancel := ctx, context.CancelFunc(func() {})
			if c.hasPending() {
				pctx, pcancel = context.WithDeadline(ctx, lastCommit.Add(c.o.commitInterval))
			}
			fetches := cl.PollFetches(pctx)
			pcancel()
			if ctx.Err() != nil || fetches.IsClientClosed() {
				break
			}
			fetches.EachError(func(topic string, p int32, err error) {
				if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
					return
				}
				c.log.Error(err, "Fetch failed", "topic", topic, "partition", p)
			})
			fetches.EachPartition(func(p kgo.FetchTopicPartition) {
				if len(p.Records) > 0 {
					queue = append(queue, part{TopicPartition{p.Topic, p.Partition}, p.Records})
				}
			})
		}
		var batch []part
		batch, queue = c.share(queue, c.o.maxPollRecords)
		left := c.runBatch(ctx, hctx, batch, force)
		if ctx.Err() != nil {
			break
		}
		cutShort := len(left) > 0 || c.rebalWant.Load()
		if cutShort {
			c.rewind(left, queue)
			queue = nil
		}
		if cutShort || time.Since(lastCommit) >= c.o.commitInterval {
			c.commitPending(context.WithoutCancel(ctx), nil)
			lastCommit = time.Now()
		}
		if len(queue) == 0 {
			c.rebalWant.Store(false)
			cl.AllowRebalance()
		}
	}

	c.ready.Store(false)
	c.commitPending(context.WithoutCancel(ctx), nil)
	// Leaving the group revokes everything; onRevoked commits anything
	// still pending before the partitions are given up.
	cl.CloseAllowingRebalance()
	s := c.Stats()
	c.log.Info("Stopped", "handled", s.Handled, "failed", s.Failed, "deadLettered", s.DeadLettered, "stalledPartitions", len(s.Stalled))
	return nil
}

func (c *Consumer) serveHTTP() (func(), error) {
	if c.cfg.HTTPAddr == "" {
		return func() {}, nil
	}
	ln, err := net.Listen("tcp", c.cfg.HTTPAddr)
	if err != nil {
		return nil, fmt.Errorf("handler: listening for health and metrics (%s): %w", EnvHTTPAddr, err)
	}
	srv := &http.Server{Handler: c.Handler(), ReadHeaderTimeout: 5 * time.Second}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			c.log.Error(err, "Health and metrics server stopped")
		}
	}()
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
	}, nil
}

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
				switch c.handle(hctx, r, abort, t) {
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

type outcome int

const (
	outcomeDone        outcome = iota // handled or dead-lettered
	outcomeStalled                    // failed every attempt, no dead-letter topic
	outcomeInterrupted                // shutdown or rebalance before the record was settled
)

// handle calls the function with retries, then dead-letters or stalls.
func (c *Consumer) handle(hctx context.Context, r *kgo.Record, abort func() bool, t *tally) outcome {
	backoff := c.o.initialBackoff
	var err error
	attempt := 0
	for {
		attempt++
		err = c.call(hctx, r, t)
		if err == nil {
			t.handled++
			return outcomeDone
		}
		t.closeRun(c.m.latency.bounds, time.Now())
		c.m.attemptErrors.WithLabelValues(r.Topic).Inc()
		if hctx.Err() != nil {
			return outcomeInterrupted
		}
		if attempt >= c.o.attempts {
			break
		}
		c.retries.Add(1)
		c.log.V(1).Info("Record failed, retrying", "topic", r.Topic, "partition", r.Partition, "offset", r.Offset, "attempt", attempt, "backoff", backoff.String(), "error", err.Error())
		if !sleep(hctx, backoff, abort) {
			return outcomeInterrupted
		}
		t.restart()
		backoff = min(2*backoff, c.o.maxBackoff)
	}
	c.failed.Add(1)
	c.m.failed.WithLabelValues(r.Topic).Inc()
	if c.cfg.DeadLetterTopic == "" {
		c.stall(r, attempt, err)
		return outcomeStalled
	}
	dl := deadLetter(c.cfg.DeadLetterTopic, r, attempt, err)
	backoff = c.o.initialBackoff
	for {
		perr := c.cl.ProduceSync(hctx, dl).FirstErr()
		if perr == nil {
			break
		}
		c.log.Error(perr, "Writing to the dead-letter topic failed, retrying", "deadLetterTopic", c.cfg.DeadLetterTopic, "topic", r.Topic, "partition", r.Partition, "offset", r.Offset)
		if hctx.Err() != nil || !sleep(hctx, max(backoff, time.Millisecond), abort) {
			return outcomeInterrupted
		}
		backoff = min(2*max(backoff, time.Millisecond), c.o.maxBackoff)
	}
	t.restart()
	c.deadLettered.Add(1)
	c.m.deadLettered.WithLabelValues(r.Topic).Inc()
	c.log.Info("Record dead-lettered", "topic", r.Topic, "partition", r.Partition, "offset", r.Offset, "attempts", attempt, "deadLetterTopic", c.cfg.DeadLetterTopic, "error", err.Error())
	return outcomeDone
}

// call runs the function once, turning a panic into an error, and counts
// the call in t's open run (see tally).
func (c *Consumer) call(ctx context.Context, r *kgo.Record, t *tally) (err error) {
	defer func() {
		t.called(c.m.latency.bounds)
		if p := recover(); p != nil {
			err = fmt.Errorf("handler panicked: %v", p)
		}
	}()
	return c.fn(ctx, r)
}

// sleep waits d, polling abort; it reports false if it was interrupted.
func sleep(ctx context.Context, d time.Duration, abort func() bool) bool {
	deadline := time.Now().Add(d)
	for {
		if abort() || ctx.Err() != nil {
			return false
		}
		left := time.Until(deadline)
		if left <= 0 {
			return true
		}
		t := time.NewTimer(min(left, 50*time.Millisecond))
		select {
		case <-ctx.Done():
			t.Stop()
			return false
		case <-t.C:
		}
	}
}

func deadLetter(topic string, r *kgo.Record, attempts int, err error) *kgo.Record {
	hs := make([]kgo.RecordHeader, 0, len(r.Headers)+5)
	hs = append(hs, r.Headers...)
	hs = append(hs,
		kgo.RecordHeader{Key: HeaderOriginalTopic, Value: []byte(r.Topic)},
		kgo.RecordHeader{Key: HeaderOriginalPartition, Value: []byte(strconv.FormatInt(int64(r.Partition), 10))},
		kgo.RecordHeader{Key: HeaderOriginalOffset, Value: []byte(strconv.FormatInt(r.Offset, 10))},
		kgo.RecordHeader{Key: HeaderAttempts, Value: []byte(strconv.Itoa(attempts))},
		kgo.RecordHeader{Key: HeaderError, Value: []byte(err.Error())},
	)
	return &kgo.Record{Topic: topic, Key: r.Key, Value: r.Value, Headers: hs, Timestamp: r.Timestamp}
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

func (c *Consumer) markDone(tp TopicPartition, r *kgo.Record) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.owned[tp]; !ok {
		return
	}
	c.done[tp] = kgo.EpochOffset{Epoch: r.LeaderEpoch, Offset: r.Offset + 1}
}

func (c *Consumer) stall(r *kgo.Record, attempts int, err error) {
	tp := TopicPartition{r.Topic, r.Partition}
	c.mu.Lock()
	c.stalled[tp] = StalledPartition{TopicPartition: tp, Offset: r.Offset, Err: err.Error()}
	c.m.stalled.Set(float64(len(c.stalled)))
	c.mu.Unlock()
	c.cl.PauseFetchPartitions(map[string][]int32{tp.Topic: {tp.Partition}})
	c.log.Error(err, "Partition stopped: record failed every attempt and no dead-letter topic is configured",
		"topic", r.Topic, "partition", r.Partition, "offset", r.Offset, "attempts", attempts)
}

// hasPending reports whether some handled offset is not committed yet.
func (c *Consumer) hasPending() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	for tp, eo := range c.done {
		if cm, ok := c.committed[tp]; !ok || cm < eo.Offset {
			return true
		}
	}
	return false
}

// commitPending commits the handled prefix of every partition (or of only)
// that moved since the last commit.
func (c *Consumer) commitPending(ctx context.Context, only map[string][]int32) {
	c.commitMu.Lock()
	defer c.commitMu.Unlock()
	want := map[string]map[int32]kgo.EpochOffset{}
	c.mu.Lock()
	for tp, eo := range c.done {
		if only != nil && !slices.Contains(only[tp.Topic], tp.Partition) {
			continue
		}
		if cm, ok := c.committed[tp]; ok && cm >= eo.Offset {
			continue
		}
		if want[tp.Topic] == nil {
			want[tp.Topic] = map[int32]kgo.EpochOffset{}
		}
		want[tp.Topic][tp.Partition] = eo
	}
	c.mu.Unlock()
	if len(want) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	c.cl.CommitOffsetsSync(ctx, want, func(_ *kgo.Client, _ *kmsg.OffsetCommitRequest, resp *kmsg.OffsetCommitResponse, err error) {
		if err != nil {
			c.m.commitErrors.Inc()
			c.log.Error(err, "Committing offsets failed")
			return
		}
		c.mu.Lock()
		defer c.mu.Unlock()
		for _, t := range resp.Topics {
			for _, p := range t.Partitions {
				if perr := kerrCode(p.ErrorCode); perr != nil {
					c.m.commitErrors.Inc()
					c.log.Error(perr, "Committing offset failed", "topic", t.Topic, "partition", p.Partition)
					continue
				}
				c.committed[TopicPartition{t.Topic, p.Partition}] = want[t.Topic][p.Partition].Offset
			}
		}
	})
}

func (c *Consumer) onAssigned(_ context.Context, _ *kgo.Client, assigned map[string][]int32) {
	c.mu.Lock()
	for t, ps := range assigned {
		for _, p := range ps {
			c.owned[TopicPartition{t, p}] = struct{}{}
		}
	}
	c.m.owned.Set(float64(len(c.owned)))
	c.mu.Unlock()
	c.ready.Store(true)
	if len(assigned) > 0 {
		c.log.Info("Partitions assigned", "partitions", assigned)
	}
}

func (c *Consumer) onRevoked(ctx context.Context, _ *kgo.Client, revoked map[string][]int32) {
	// Commit before giving the partitions up so that the next owner does
	// not handle them again. Batches already commit before allowing a
	// rebalance; this catches a commit that failed then.
	c.commitPending(context.WithoutCancel(ctx), revoked)
	c.forget(revoked)
	if len(revoked) > 0 {
		c.log.Info("Partitions revoked", "partitions", revoked)
	}
}

func (c *Consumer) onLost(_ context.Context, _ *kgo.Client, lost map[string][]int32) {
	c.forget(lost)
	if len(lost) > 0 {
		c.log.Info("Partitions lost", "partitions", lost)
	}
}

// forget drops the state of partitions this member no longer owns and
// resumes any it had paused, so that they fetch again if they come back.
func (c *Consumer) forget(tps map[string][]int32) {
	resume := map[string][]int32{}
	c.mu.Lock()
	for t, ps := range tps {
		for _, p := range ps {
			tp := TopicPartition{t, p}
			if _, ok := c.stalled[tp]; ok {
				resume[t] = append(resume[t], p)
			}
			delete(c.owned, tp)
			delete(c.done, tp)
			delete(c.committed, tp)
			delete(c.stalled, tp)
			delete(c.runMax, tp)
		}
	}
	c.m.owned.Set(float64(len(c.owned)))
	c.m.stalled.Set(float64(len(c.stalled)))
	c.mu.Unlock()
	if len(resume) > 0 {
		c.cl.ResumeFetchPartitions(resume)
	}
}
