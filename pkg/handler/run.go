package handler

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/lagscale/lagscale/pkg/contract"
	"github.com/twmb/franz-go/pkg/kgo"
)

// This file holds the poll loop: fetch, share into batches, commit between
// batches, and the shutdown timer.

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
	c.m.groupType.WithLabelValues(c.cfg.GroupType).Set(1)
	if c.cfg.GroupType == GroupShare {
		return c.runShare(ctx, base)
	}
	kopts, err := c.groupClientOptions(base)
	if err != nil {
		return err
	}
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
	defer c.watchShutdown(ctx, "Shutting down: finishing in-flight records",
		"Shutdown timeout expired: abandoning unfinished records, they stay uncommitted",
		func() { close(force); hcancel() })()

	c.pollLoop(ctx, hctx, cl, force)

	c.ready.Store(false)
	c.commitPending(context.WithoutCancel(ctx), nil)
	// Leaving the group revokes everything; onRevoked commits anything
	// still pending before the partitions are given up.
	cl.CloseAllowingRebalance()
	s := c.Stats()
	c.log.Info("Stopped", "handled", s.Handled, "failed", s.Failed, "deadLettered", s.DeadLettered, "stalledPartitions", len(s.Stalled))
	return nil
}

// groupClientOptions are the client options of a classic or KIP-848
// consumer group on top of the connection's: manual commits between
// batches, rebalances blocked while records are handled, and the
// rebalance callbacks.
func (c *Consumer) groupClientOptions(base []kgo.Opt) ([]kgo.Opt, error) {
	// Started now, so that with latest a partition the group has not
	// committed on starts after what was there before this consumer, and a
	// partition created later is read from its first record.
	reset, err := contract.ResetOffset(c.cfg.AutoOffsetReset, time.Now())
	if err != nil {
		return nil, fmt.Errorf("handler: %w", err)
	}
	isolation, err := contract.IsolationLevel(c.cfg.IsolationLevel)
	if err != nil {
		return nil, fmt.Errorf("handler: %w", err)
	}
	kopts := append(base,
		kgo.ConsumerGroup(c.cfg.Group),
		kgo.ConsumeTopics(c.cfg.Topics...),
		kgo.ConsumeResetOffset(reset),
		isolation,
		kgo.Balancers(kgo.CooperativeStickyBalancer()),
		kgo.DisableAutoCommit(),
		kgo.BlockRebalanceOnPoll(),
		kgo.OnPartitionsAssigned(c.onAssigned),
		kgo.OnPartitionsRevoked(c.onRevoked),
		kgo.OnPartitionsLost(c.onLost),
		kgo.OnPartitionsCallbackBlocked(func(context.Context, *kgo.Client) { c.rebalWant.Store(true) }),
		kgo.WithLogger(kgoLogger{c.log.WithName("kgo")}),
	)
	if c.cfg.GroupType == GroupConsumer {
		// KIP-848: the broker assigns partitions, with the cooperative
		// sticky balancer's server-side twin ("uniform").
		kopts = append(kopts, kgo.ServerSideBalancer())
	}
	return append(kopts, c.o.clientOpts...), nil
}

// pollLoop polls and handles records until ctx is cancelled or the client
// closes.
//
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
func (c *Consumer) pollLoop(ctx, hctx context.Context, cl *kgo.Client, force chan struct{}) {
	var queue []part
	lastCommit := time.Now()
	for {
		if len(queue) == 0 {
			var closed bool
			if queue, closed = c.poll(ctx, cl, lastCommit); closed {
				return
			}
		}
		var batch []part
		batch, queue = c.share(queue, c.o.maxPollRecords)
		left := c.runBatch(ctx, hctx, batch, force)
		if ctx.Err() != nil {
			return
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
}

// poll fetches what kgo has buffered, one queue entry per partition with
// records, waiting no longer than until the next commit is due while
// offsets are pending. closed is true when ctx is cancelled or the client
// closed.
func (c *Consumer) poll(ctx context.Context, cl *kgo.Client, lastCommit time.Time) (queue []part, closed bool) {
	pctx, pcancel := ctx, context.CancelFunc(func() {})
	if c.hasPending() {
		pctx, pcancel = context.WithDeadline(ctx, lastCommit.Add(c.o.commitInterval))
	}
	fetches := cl.PollFetches(pctx)
	pcancel()
	if ctx.Err() != nil || fetches.IsClientClosed() {
		return nil, true
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
	return queue, false
}
