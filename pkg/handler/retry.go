package handler

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// This file holds one record's fate: the call, retries with backoff, and
// then the dead-letter topic or a stalled partition.

type outcome int

const (
	outcomeDone        outcome = iota // handled or dead-lettered
	outcomeStalled                    // failed every attempt, no dead-letter topic
	outcomeInterrupted                // shutdown or rebalance before the record was settled
)

// handle calls the function with retries, then dead-letters or stalls.
func (c *Consumer) handle(hctx context.Context, cd *callDeadline, r *kgo.Record, abort func() bool, t *tally) outcome {
	backoff := c.o.initialBackoff
	var err error
	attempt := 0
	for {
		attempt++
		err = c.call(hctx, cd, r, t)
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
	backoff = c.o.dlInitial
	for dlAttempt := 1; ; dlAttempt++ {
		perr := c.cl.ProduceSync(hctx, dl).FirstErr()
		if perr == nil {
			break
		}
		c.m.deadLetterErrors.WithLabelValues(r.Topic).Inc()
		if hctx.Err() != nil {
			return outcomeInterrupted
		}
		if dlAttempt >= c.o.dlAttempts {
			// The record is neither handled nor safely elsewhere: its
			// partition stops here, visibly, and the others carry on.
			c.stall(r, attempt, fmt.Errorf("writing to dead-letter topic %s failed %d times: %w (the record failed with: %v)", c.cfg.DeadLetterTopic, dlAttempt, perr, err))
			return outcomeStalled
		}
		c.log.Error(perr, "Writing to the dead-letter topic failed, retrying", "deadLetterTopic", c.cfg.DeadLetterTopic, "topic", r.Topic, "partition", r.Partition, "offset", r.Offset, "attempt", dlAttempt, "backoff", backoff.String())
		if !sleep(hctx, backoff, abort) {
			return outcomeInterrupted
		}
		backoff = min(2*max(backoff, time.Millisecond), c.o.dlMax)
	}
	t.restart()
	c.deadLettered.Add(1)
	c.m.deadLettered.WithLabelValues(r.Topic).Inc()
	c.log.Info("Record dead-lettered", "topic", r.Topic, "partition", r.Partition, "offset", r.Offset, "attempts", attempt, "deadLetterTopic", c.cfg.DeadLetterTopic, "error", err.Error())
	return outcomeDone
}

// call runs the function once with a context that ends at the call
// timeout (or when the shutdown timeout cancels hctx), turning a panic into
// an error, and counts the call in t's open run (see tally). A call that
// fails after its deadline passed is reported as timed out.
func (c *Consumer) call(hctx context.Context, cd *callDeadline, r *kgo.Record, t *tally) (err error) {
	ctx := cd.begin()
	defer func() {
		cd.end()
		t.called(c.m.latency.bounds)
		if p := recover(); p != nil {
			err = fmt.Errorf("handler panicked: %v", p)
		}
	}()
	err = c.fn(ctx, r)
	if err != nil && hctx.Err() == nil && errors.Is(ctx.Err(), context.DeadlineExceeded) {
		c.m.callTimeouts.Inc()
		err = fmt.Errorf("handler call exceeded its %s deadline: %w", c.o.callTimeout, err)
	}
	return err
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
	c.cl.PauseFetchPartitions(map[string][]int32{tp.Topic: {tp.Partition}})
	c.log.Error(err, "Partition stopped: record failed every attempt and no dead-letter topic is configured",
		"topic", r.Topic, "partition", r.Partition, "offset", r.Offset, "attempts", attempts)
}
