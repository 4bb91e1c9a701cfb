package handler

import (
	"context"

	"github.com/twmb/franz-go/pkg/kgo"
)

// This file holds the rebalance callbacks: what a member owns, and what it
// commits and forgets when partitions go.

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
