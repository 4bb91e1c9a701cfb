package handler

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// This file holds the share-group (KIP-932, KAFKA_GROUP_TYPE=share) loop.
// A share group has no partitions of its own and no committed offsets: the
// broker hands each member records under an acquisition lock, and the
// member acknowledges every record on its own.
//
//   - the function returned nil: Accept;
//   - it failed and the record has been delivered fewer than the attempts
//     of WithRetry: Release, so that the broker delivers it again, to this
//     member or another, with its delivery count (kgo.Record.DeliveryCount)
//     one higher; the retry backoff is the broker's redelivery;
//   - it failed on its last attempt: written to the dead-letter topic and
//     then Accepted, or Rejected (archived by the broker, never delivered
//     again) when there is no dead-letter topic. When every write to the
//     dead-letter topic fails, the record is Released instead, so it is not
//     lost; the broker's group.share.delivery.count.limit (default 5) then
//     archives it at the latest. Keep the attempts at or below that limit,
//     or the broker archives a record before it reaches the dead-letter
//     topic.
//   - on shutdown the record being handled finishes within the shutdown
//     timeout (or is Released when the timeout cancels it), and the records
//     of the poll not started yet are Released at once, so that other
//     members take them without waiting for their locks to expire.
//
// kgo auto-accepts a record that is not acknowledged by the next poll, so
// every record of a poll is acknowledged before polling again.

// runShare consumes as a member of the share group until ctx is cancelled.
func (c *Consumer) runShare(ctx context.Context, base []kgo.Opt) error {
	// The reset is set before the member joins: the broker reads it when
	// it first initialises a share partition.
	if c.cfg.AutoOffsetReset == ResetEarliest {
		c.setShareReset(ctx, base)
	}
	kopts := append(base,
		kgo.ShareGroup(c.cfg.Group),
		kgo.ConsumeTopics(c.cfg.Topics...),
		kgo.ShareMaxRecords(int32(min(c.o.maxPollRecords, 1<<30))),
		kgo.WithLogger(kgoLogger{c.log.WithName("kgo")}),
	)
	kopts = append(kopts, c.o.clientOpts...)
	cl, err := kgo.NewClient(kopts...)
	if err != nil {
		return fmt.Errorf("handler: creating Kafka client: %w", err)
	}
	c.cl = cl
	c.log.Info("Consuming", "groupType", c.cfg.GroupType, "topics", c.cfg.Topics, "brokers", c.cfg.Brokers, "deadLetterTopic", c.cfg.DeadLetterTopic)
	c.ready.Store(true)

	hctx, hcancel := context.WithCancel(context.WithoutCancel(ctx))
	defer hcancel()
	stopWatch := c.watchShutdown(ctx, "Shutting down: finishing the record in flight, releasing the others",
		"Shutdown timeout expired: releasing the unfinished record for redelivery", hcancel)

	cd := newCallDeadline(hctx, c.o.callTimeout)
	for ctx.Err() == nil {
		fetches := cl.PollRecords(ctx, c.o.maxPollRecords)
		if fetches.IsClientClosed() {
			break
		}
		fetches.EachError(func(topic string, p int32, err error) {
			if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
				return
			}
			c.log.Error(err, "Fetch failed", "topic", topic, "partition", p)
		})
		recs := fetches.Records()
		for i, r := range recs {
			if ctx.Err() != nil {
				c.shareAck(recs[i:], kgo.AckRelease)
				break
			}
			c.m.inFlight.Set(1)
			c.handleShared(hctx, cd, r)
			c.m.inFlight.Set(0)
		}
	}
	cd.close()
	stopWatch()

	c.ready.Store(false)
	fctx, fcancel := context.WithTimeout(context.WithoutCancel(ctx), max(c.o.shutdownTimeout, time.Second))
	if err := cl.FlushAcks(fctx); err != nil {
		c.log.Error(err, "Flushing acknowledgements failed: the broker redelivers those records when their locks expire")
	}
	fcancel()
	// Leaving releases anything still acquired and ends the share
	// sessions.
	cl.Close()
	s := c.Stats()
	c.log.Info("Stopped", "handled", s.Handled, "failed", s.Failed, "deadLettered", s.DeadLettered)
	return nil
}

// handleShared calls the function once for a record and acknowledges it by
// the outcome; see the file comment.
func (c *Consumer) handleShared(hctx context.Context, cd *callDeadline, r *kgo.Record) {
	t := newTally(c.m.latency.bounds, time.Now())
	defer c.flushTally(r.Topic, t)
	err := c.call(hctx, cd, r, t)
	if err == nil {
		t.handled++
		c.shareAck([]*kgo.Record{r}, kgo.AckAccept)
		return
	}
	t.closeRun(c.m.latency.bounds, time.Now())
	c.m.attemptErrors.WithLabelValues(r.Topic).Inc()
	attempt := int(max(r.DeliveryCount(), 1))
	if hctx.Err() != nil {
		// The shutdown timeout cancelled the call: another member tries
		// it again, and this delivery counts as one attempt.
		c.shareAck([]*kgo.Record{r}, kgo.AckRelease)
		return
	}
	if attempt < c.o.attempts {
		c.retries.Add(1)
		c.log.V(1).Info("Record failed, releasing it for redelivery", "topic", r.Topic, "partition", r.Partition, "offset", r.Offset, "deliveryCount", attempt, "error", err.Error())
		c.shareAck([]*kgo.Record{r}, kgo.AckRelease)
		return
	}
	c.failed.Add(1)
	c.m.failed.WithLabelValues(r.Topic).Inc()
	if c.cfg.DeadLetterTopic == "" {
		c.log.Error(err, "Record rejected: it failed every attempt and no dead-letter topic is configured",
			"topic", r.Topic, "partition", r.Partition, "offset", r.Offset, "deliveryCount", attempt)
		c.shareAck([]*kgo.Record{r}, kgo.AckReject)
		return
	}
	dl := deadLetter(c.cfg.DeadLetterTopic, r, attempt, err)
	backoff := c.o.dlInitial
	for dlAttempt := 1; ; dlAttempt++ {
		perr := c.cl.ProduceSync(hctx, dl).FirstErr()
		if perr == nil {
			break
		}
		c.m.deadLetterErrors.WithLabelValues(r.Topic).Inc()
		if hctx.Err() != nil || dlAttempt >= c.o.dlAttempts {
			c.log.Error(perr, "Writing to the dead-letter topic failed: releasing the record for redelivery",
				"deadLetterTopic", c.cfg.DeadLetterTopic, "topic", r.Topic, "partition", r.Partition, "offset", r.Offset, "attempts", dlAttempt)
			c.shareAck([]*kgo.Record{r}, kgo.AckRelease)
			return
		}
		if !sleep(hctx, backoff, func() bool { return false }) {
			c.shareAck([]*kgo.Record{r}, kgo.AckRelease)
			return
		}
		backoff = min(2*max(backoff, time.Millisecond), c.o.dlMax)
	}
	c.deadLettered.Add(1)
	c.m.deadLettered.WithLabelValues(r.Topic).Inc()
	c.log.Info("Record dead-lettered", "topic", r.Topic, "partition", r.Partition, "offset", r.Offset, "attempts", attempt, "deadLetterTopic", c.cfg.DeadLetterTopic, "error", err.Error())
	c.shareAck([]*kgo.Record{r}, kgo.AckAccept)
}

// shareAck acknowledges records with one status and counts it.
func (c *Consumer) shareAck(rs []*kgo.Record, status kgo.AckStatus) {
	if len(rs) == 0 {
		return
	}
	c.cl.MarkAcks(status, rs...)
	label := map[kgo.AckStatus]string{kgo.AckAccept: "accept", kgo.AckRelease: "release", kgo.AckReject: "reject"}[status]
	for _, r := range rs {
		c.m.shareAcks.WithLabelValues(r.Topic, label).Inc()
	}
}

// setShareReset sets the group's share.auto.offset.reset to earliest, so
// that the share group starts at the first retained record as
// KAFKA_AUTO_OFFSET_RESET=earliest asks (the broker's default is latest).
// It needs ALTER_CONFIGS on the group; without it the group starts at the
// end of the log, which is logged.
func (c *Consumer) setShareReset(ctx context.Context, base []kgo.Opt) {
	adm, err := kgo.NewClient(base...)
	if err != nil {
		c.log.Error(err, "Setting share.auto.offset.reset=earliest on the share group failed: it starts at the end of the log")
		return
	}
	defer adm.Close()
	req := kmsg.NewPtrIncrementalAlterConfigsRequest()
	res := kmsg.NewIncrementalAlterConfigsRequestResource()
	res.ResourceType = kmsg.ConfigResourceTypeGroupConfig
	res.ResourceName = c.cfg.Group
	cfg := kmsg.NewIncrementalAlterConfigsRequestResourceConfig()
	cfg.Name = "share.auto.offset.reset"
	cfg.Op = kmsg.IncrementalAlterConfigOpSet
	cfg.Value = kmsg.StringPtr(ResetEarliest)
	res.Configs = append(res.Configs, cfg)
	req.Resources = append(req.Resources, res)
	rctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	resp, err := req.RequestWith(rctx, adm)
	if err == nil && len(resp.Resources) > 0 {
		err = kerr.ErrorForCode(resp.Resources[0].ErrorCode)
	}
	if err != nil {
		c.log.Error(err, "Setting share.auto.offset.reset=earliest on the share group failed: it starts at the end of the log")
	}
}
