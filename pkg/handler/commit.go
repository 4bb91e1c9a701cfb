package handler

import (
	"context"
	"slices"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// This file holds commit tracking: the handled prefix of each partition and
// the commits of it.

func (c *Consumer) markDone(tp TopicPartition, r *kgo.Record) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.owned[tp]; !ok {
		return
	}
	c.done[tp] = kgo.EpochOffset{Epoch: r.LeaderEpoch, Offset: r.Offset + 1}
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
