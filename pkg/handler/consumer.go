package handler

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"
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
// every attempt and could not be dead-lettered: no dead-letter topic was
// configured, or every write to it failed (WithDeadLetterRetry). Nothing at or
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
