package handler

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
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

	failed, deadLettered, retries atomic.Uint64

	ready    atomic.Bool
	started  atomic.Bool
	stopping atomic.Bool // set when the run context is cancelled

	cl    *kgo.Client
	hctx  context.Context // the context handler functions see
	sem   chan struct{}   // bounds the partitions handled at the same time
	force chan struct{}   // closed when the shutdown timeout expires
	room  chan struct{}   // capacity 1: a worker took its queue

	mu             sync.Mutex
	parts          map[TopicPartition]*partition // owned partitions
	stalled        map[TopicPartition]StalledPartition
	handledRetired uint64 // handled records of partitions given up

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
	c := &Consumer{
		fn: fn, cfg: cfg, o: o, log: log, gatherer: gatherer,
		sem:     make(chan struct{}, o.concurrency),
		force:   make(chan struct{}),
		room:    make(chan struct{}, 1),
		parts:   map[TopicPartition]*partition{},
		stalled: map[TopicPartition]StalledPartition{},
	}
	m, err := newMetrics(reg, private, cfg.Topics, c.inFlight)
	if err != nil {
		return nil, fmt.Errorf("handler: registering metrics: %w", err)
	}
	c.m = m
	return c, nil
}

// Config returns the configuration the Consumer runs with.
func (c *Consumer) Config() Config { return c.cfg }

// Stats returns the counters so far.
func (c *Consumer) Stats() Stats {
	s := Stats{
		Failed:       c.failed.Load(),
		DeadLettered: c.deadLettered.Load(),
		Retries:      c.retries.Load(),
	}
	c.mu.Lock()
	s.Handled = c.handledRetired
	for _, p := range c.parts {
		s.Handled += p.handled.Load()
	}
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
	// hctx is what the handler function sees: it outlives ctx by the
	// shutdown timeout so that in-flight records can finish. Workers start
	// from the client's callbacks, so it exists before the client.
	hctx, hcancel := context.WithCancel(context.WithoutCancel(ctx))
	defer hcancel()
	c.hctx = hctx
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
		kgo.WithLogger(kgoLogger{c.log.WithName("kgo")}),
	)
	kopts = append(kopts, c.o.clientOpts...)
	cl, err := kgo.NewClient(kopts...)
	if err != nil {
		return fmt.Errorf("handler: creating Kafka client: %w", err)
	}
	c.cl = cl
	c.log.Info("Consuming", "topics", c.cfg.Topics, "brokers", c.cfg.Brokers, "deadLetterTopic", c.cfg.DeadLetterTopic)

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
			close(c.force)
			hcancel()
		case <-finished:
		}
	}()

	// Handled offsets are committed on an interval, off the poll loop and
	// the workers; a partition is also committed when it is given up, and
	// everything is committed before leaving.
	stopCommits := make(chan struct{})
	commitsDone := make(chan struct{})
	go func() {
		defer close(commitsDone)
		t := time.NewTicker(c.o.commitInterval)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				c.commitPending(hctx, nil)
			case <-stopCommits:
				return
			}
		}
	}()

	// The poll loop hands records to the partitions' workers and polls
	// again at once. BlockRebalanceOnPoll keeps rebalances out of the
	// short stretch between a poll and AllowRebalance, so records are
	// only queued for partitions this member owns.
	var full []*partition
	for {
		fetches := cl.PollRecords(ctx, c.o.maxPollRecords)
		if ctx.Err() != nil || fetches.IsClientClosed() {
			break
		}
		fetches.EachError(func(topic string, p int32, err error) {
			if errors.Is(err, context.Canceled) {
				return
			}
			c.log.Error(err, "Fetch failed", "topic", topic, "partition", p)
		})
		full = full[:0]
		fetches.EachPartition(func(fp kgo.FetchTopicPartition) {
			if len(fp.Records) == 0 {
				return
			}
			if p := c.partition(TopicPartition{fp.Topic, fp.Partition}); p.push(fp.Records) {
				full = append(full, p)
			}
		})
		cl.AllowRebalance()
		c.waitForRoom(ctx, full)
	}

	c.ready.Store(false)
	c.mu.Lock()
	all := make([]*partition, 0, len(c.parts))
	for _, p := range c.parts {
		all = append(all, p)
	}
	c.mu.Unlock()
	c.stopAndWait(all)
	close(stopCommits)
	<-commitsDone
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

// partition returns the state of an owned partition, creating it and
// starting its worker the first time.
func (c *Consumer) partition(tp TopicPartition) *partition {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.partitionLocked(tp)
}

func (c *Consumer) partitionLocked(tp TopicPartition) *partition {
	p, ok := c.parts[tp]
	if !ok {
		p = newPartition(c, tp)
		c.parts[tp] = p
		c.m.owned.Set(float64(len(c.parts)))
		go p.run(c.hctx)
	}
	return p
}

// waitForRoom is the poll loop's backpressure: it waits until the workers
// of full partitions took their queues, at most pauseAfter, and pauses
// fetching of those still full then. It runs after AllowRebalance, so a
// rebalance never waits for it.
func (c *Consumer) waitForRoom(ctx context.Context, full []*partition) {
	if len(full) == 0 {
		return
	}
	timer := time.NewTimer(pauseAfter)
	defer timer.Stop()
	for {
		still := full[:0]
		for _, p := range full {
			if p.full() {
				still = append(still, p)
			}
		}
		if full = still; len(full) == 0 {
			return
		}
		select {
		case <-c.room:
		case <-timer.C:
			for _, p := range full {
				p.pauseIfFull()
			}
			return
		case <-ctx.Done():
			return
		}
	}
}

// stopAndWait stops the workers of ps and waits until they return, or
// until the shutdown timeout expires.
func (c *Consumer) stopAndWait(ps []*partition) {
	for _, p := range ps {
		p.stop()
	}
	for _, p := range ps {
		select {
		case <-p.exited:
		case <-c.force:
			return
		}
	}
}

// inFlight counts the partitions whose worker is handling a record.
func (c *Consumer) inFlight() float64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, p := range c.parts {
		if p.busy.Load() {
			n++
		}
	}
	return float64(n)
}

type outcome int

const (
	outcomeDone        outcome = iota // handled or dead-lettered
	outcomeStalled                    // failed every attempt, no dead-letter topic
	outcomeInterrupted                // shutdown or rebalance before the record was settled
)

// retry takes over a record whose first attempt failed with err: it tries
// again with backoff, then dead-letters or stalls.
func (c *Consumer) retry(hctx context.Context, p *partition, r *kgo.Record, err error) outcome {
	backoff := c.o.initialBackoff
	attempt := 1
	for {
		c.m.attemptErrors.WithLabelValues(r.Topic).Inc()
		if hctx.Err() != nil {
			return outcomeInterrupted
		}
		if attempt >= c.o.attempts {
			break
		}
		c.retries.Add(1)
		c.log.V(1).Info("Record failed, retrying", "topic", r.Topic, "partition", r.Partition, "offset", r.Offset, "attempt", attempt, "backoff", backoff.String(), "error", err.Error())
		if !sleep(hctx, backoff, p.abort) {
			return outcomeInterrupted
		}
		backoff = min(2*backoff, c.o.maxBackoff)
		attempt++
		start := time.Now()
		err = c.call(hctx, r)
		c.m.latency.Observe(time.Since(start).Seconds())
		if err == nil {
			p.handled.Add(1)
			p.handledCounter.Inc()
			return outcomeDone
		}
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
		if hctx.Err() != nil || !sleep(hctx, max(backoff, time.Millisecond), p.abort) {
			return outcomeInterrupted
		}
		backoff = min(2*max(backoff, time.Millisecond), c.o.maxBackoff)
	}
	c.deadLettered.Add(1)
	c.m.deadLettered.WithLabelValues(r.Topic).Inc()
	c.log.Info("Record dead-lettered", "topic", r.Topic, "partition", r.Partition, "offset", r.Offset, "attempts", attempt, "deadLetterTopic", c.cfg.DeadLetterTopic, "error", err.Error())
	return outcomeDone
}

// call runs the function once, turning a panic into an error.
func (c *Consumer) call(ctx context.Context, r *kgo.Record) (err error) {
	defer func() {
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

func (c *Consumer) stall(r *kgo.Record, attempts int, err error) {
	tp := TopicPartition{r.Topic, r.Partition}
	c.mu.Lock()
	c.stalled[tp] = StalledPartition{TopicPartition: tp, Offset: r.Offset, Err: err.Error()}
	c.m.stalled.Set(float64(len(c.stalled)))
	c.mu.Unlock()
	c.log.Error(err, "Partition stopped: record failed every attempt and no dead-letter topic is configured",
		"topic", r.Topic, "partition", r.Partition, "offset", r.Offset, "attempts", attempts)
}

// commitPending commits the handled prefix of every owned partition (or
// of only) that moved since the last commit.
func (c *Consumer) commitPending(ctx context.Context, only map[string][]int32) {
	c.commitMu.Lock()
	defer c.commitMu.Unlock()
	want := map[string]map[int32]kgo.EpochOffset{}
	parts := map[TopicPartition]*partition{}
	c.mu.Lock()
	for tp, p := range c.parts {
		if only != nil && !contains(only[tp.Topic], tp.Partition) {
			continue
		}
		r := p.last.Load()
		if r == nil || r.Offset+1 <= p.committed {
			continue
		}
		if want[tp.Topic] == nil {
			want[tp.Topic] = map[int32]kgo.EpochOffset{}
		}
		want[tp.Topic][tp.Partition] = kgo.EpochOffset{Epoch: r.LeaderEpoch, Offset: r.Offset + 1}
		parts[tp] = p
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
		for _, t := range resp.Topics {
			for _, p := range t.Partitions {
				if perr := kerrCode(p.ErrorCode); perr != nil {
					c.m.commitErrors.Inc()
					c.log.Error(perr, "Committing offset failed", "topic", t.Topic, "partition", p.Partition)
					continue
				}
				if part := parts[TopicPartition{t.Topic, p.Partition}]; part != nil {
					part.committed = want[t.Topic][p.Partition].Offset
				}
			}
		}
	})
}

func (c *Consumer) onAssigned(_ context.Context, _ *kgo.Client, assigned map[string][]int32) {
	c.mu.Lock()
	for t, ps := range assigned {
		for _, p := range ps {
			c.partitionLocked(TopicPartition{t, p})
		}
	}
	c.mu.Unlock()
	c.ready.Store(true)
	if len(assigned) > 0 {
		c.log.Info("Partitions assigned", "partitions", assigned)
	}
}

func (c *Consumer) onRevoked(ctx context.Context, _ *kgo.Client, revoked map[string][]int32) {
	// Let the record in flight finish, then commit before giving the
	// partitions up so that the next owner does not handle them again.
	// Partitions that stay with this member keep going.
	c.stopAndWait(c.lookup(revoked))
	c.commitPending(context.WithoutCancel(ctx), revoked)
	c.forget(revoked)
	if len(revoked) > 0 {
		c.log.Info("Partitions revoked", "partitions", revoked)
	}
}

func (c *Consumer) onLost(_ context.Context, _ *kgo.Client, lost map[string][]int32) {
	// Another member may own these already: stop without committing. The
	// wait keeps a partition that comes back from running two workers.
	c.stopAndWait(c.lookup(lost))
	c.forget(lost)
	if len(lost) > 0 {
		c.log.Info("Partitions lost", "partitions", lost)
	}
}

func (c *Consumer) lookup(tps map[string][]int32) []*partition {
	c.mu.Lock()
	defer c.mu.Unlock()
	var ps []*partition
	for t, parts := range tps {
		for _, p := range parts {
			if part, ok := c.parts[TopicPartition{t, p}]; ok {
				ps = append(ps, part)
			}
		}
	}
	return ps
}

// forget drops the state of partitions this member no longer owns and
// resumes any it had paused, so that they fetch again if they come back.
func (c *Consumer) forget(tps map[string][]int32) {
	var resume []*partition
	c.mu.Lock()
	for t, ps := range tps {
		for _, p := range ps {
			tp := TopicPartition{t, p}
			if part, ok := c.parts[tp]; ok {
				part.stop()
				c.handledRetired += part.handled.Load()
				resume = append(resume, part)
			}
			delete(c.parts, tp)
			delete(c.stalled, tp)
		}
	}
	c.m.owned.Set(float64(len(c.parts)))
	c.m.stalled.Set(float64(len(c.stalled)))
	c.mu.Unlock()
	for _, p := range resume {
		p.resumeIfPaused()
	}
}

func contains(ps []int32, p int32) bool {
	for _, q := range ps {
		if q == p {
			return true
		}
	}
	return false
}
