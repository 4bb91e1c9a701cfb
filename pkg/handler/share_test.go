package handler_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/lagscale/lagscale/internal/testkit"
	"github.com/lagscale/lagscale/pkg/handler"
)

// shareLag is the share group's unacknowledged records on topic.
func (b *broker) shareLag(group, topic string) int64 {
	b.t.Helper()
	k := &testkit.Kafka{Addrs: b.addrs, Adm: b.adm}
	return k.ShareLaggingT(b.t, group, topic)
}

// In a share group a poison record is released for redelivery until its
// last attempt, the handler sees its delivery count grow, and it then goes
// to the dead-letter topic and is accepted: the group ends with nothing
// unacknowledged and every good record handled once.
func TestShareGroupDeadLettersPoisonRecords(t *testing.T) {
	b := newBroker(t, 2, "jobs", "jobs-dlt")
	b.produce("jobs", 2, 10, func(p int32, i int) string {
		if p == 1 && i == 4 {
			return "poison"
		}
		return fmt.Sprintf("ok-%d-%d", p, i)
	})
	cfg := b.config("workers", "jobs")
	cfg.GroupType = handler.GroupShare
	cfg.DeadLetterTopic = "jobs-dlt"
	var mu sync.Mutex
	var poisonDeliveries []int32
	led := newLedger()
	m := start(t, func(_ context.Context, r *kgo.Record) error {
		if string(r.Value) == "poison" {
			mu.Lock()
			poisonDeliveries = append(poisonDeliveries, r.DeliveryCount())
			mu.Unlock()
			return errors.New("cannot parse job")
		}
		led.add(r)
		return nil
	}, handler.WithConfig(cfg), handler.WithRetry(3, time.Millisecond, 4*time.Millisecond))

	eventually(t, "the poison record dead-lettered", func() bool { return m.c.Stats().DeadLettered == 1 })
	eventually(t, "nothing unacknowledged", func() bool { return b.shareLag("workers", "jobs") == 0 })
	s := m.c.Stats()
	if s.Handled != 19 || s.Failed != 1 || s.Retries != 2 {
		t.Errorf("stats = %+v, want handled 19, failed 1, retries 2", s)
	}
	mu.Lock()
	got := slices.Clone(poisonDeliveries)
	mu.Unlock()
	if !slices.Equal(got, []int32{1, 2, 3}) {
		t.Errorf("the poison record's delivery counts seen by the handler: %v, want [1 2 3]", got)
	}
	if missing, dups := led.check(map[int32]int64{0: 10, 1: 10}); missing != 1 || dups != 0 {
		// The poison record is the one "missing" from the handled ledger.
		t.Errorf("ledger: %d missing (want only the poison record), %d duplicates", missing, dups)
	}

	cl, err := kgo.NewClient(kgo.SeedBrokers(b.addrs...), kgo.ConsumeTopics("jobs-dlt"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	var dl []*kgo.Record
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for len(dl) < 1 && ctx.Err() == nil {
		dl = append(dl, cl.PollFetches(ctx).Records()...)
	}
	if len(dl) != 1 {
		t.Fatalf("dead-letter topic holds %d records, want 1", len(dl))
	}
	h := headers(dl[0])
	if string(dl[0].Value) != "poison" || h[handler.HeaderOriginalTopic] != "jobs" || h[handler.HeaderOriginalPartition] != "1" ||
		h[handler.HeaderOriginalOffset] != "4" || h[handler.HeaderAttempts] != "3" || h[handler.HeaderError] != "cannot parse job" {
		t.Errorf("dead letter: value %q headers %v", dl[0].Value, h)
	}
}

// Without a dead-letter topic the poison record is rejected after its
// last attempt: the broker archives it, nothing stays unacknowledged, and
// the other records of its partition are handled (a share group has no
// partition to stop).
func TestShareGroupRejectsPoisonWithoutDeadLetterTopic(t *testing.T) {
	b := newBroker(t, 1, "jobs")
	b.produce("jobs", 1, 10, func(_ int32, i int) string {
		if i == 2 {
			return "poison"
		}
		return "ok"
	})
	cfg := b.config("workers", "jobs")
	cfg.GroupType = handler.GroupShare
	var calls sync.Map
	m := start(t, func(_ context.Context, r *kgo.Record) error {
		n, _ := calls.LoadOrStore(r.Offset, new(int))
		*n.(*int)++
		if string(r.Value) == "poison" {
			return errors.New("cannot parse job")
		}
		return nil
	}, handler.WithConfig(cfg), handler.WithRetry(2, time.Millisecond, 4*time.Millisecond))
	eventually(t, "all ten records settled", func() bool { s := m.c.Stats(); return s.Handled == 9 && s.Failed == 1 })
	eventually(t, "nothing unacknowledged", func() bool { return b.shareLag("workers", "jobs") == 0 })
	if s := m.c.Stats(); s.DeadLettered != 0 || len(s.Stalled) != 0 || s.Retries != 1 {
		t.Errorf("stats = %+v, want no dead letters, nothing stalled, 1 retry", s)
	}
	// Rejected is final: the record is not delivered a third time.
	time.Sleep(300 * time.Millisecond)
	if n, _ := calls.Load(int64(2)); *n.(*int) != 2 {
		t.Errorf("poison record called %d times, want 2", *n.(*int))
	}
}
