package handler

import (
	"context"
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

// call runs the function once under the call timeout, turning a panic
// into an error, and counts the call in t's open run (see tally). When the
// deadline passes (or the shutdown timeout cancels hctx) call returns
// without waiting for a function that ignores its context: that call is
// abandoned, its record counts as failed, and the worker moves on.
func (c *Consumer) call(hctx context.Context, r *kgo.Record, t *tally) error {
	ctx, cancel := context.WithTimeout(hctx, c.o.callTimeout)
	defer cancel()
	done := make(chan error, 1)
	go func() {
		defer func() {
			if p := recover(); p != nil {
				done <- fmt.Errorf("handler panicked: %v", p)
			}
		}()
		done <- c.fn(ctx, r)
	}()
	defer t.called(c.m.latency.bounds)
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		select {
		case err := <-done: // it returned at the deadline, as it should
			return err
		default:
		}
		c.m.abandoned.Inc()
		c.log.Error(ctx.Err(), "Handler call did not return by its deadline; abandoned", "topic", r.Topic, "partition", r.Partition, "offset", r.Offset, "callTimeout", c.o.callTimeout.String())
		return fmt.Errorf("handler call did not return within %s: %w", c.o.callTimeout, ctx.Err())
	}
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
