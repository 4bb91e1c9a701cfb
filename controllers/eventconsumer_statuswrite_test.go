package controllers

import (
	"context"
	"fmt"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/watch"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/lagscale/lagscale/api/v1alpha1"
	"github.com/lagscale/lagscale/internal/lag"
)

func TestStatusWriteDecision(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	base := func(total int64, updated time.Time) *v1alpha1.EventConsumerStatus {
		return &v1alpha1.EventConsumerStatus{
			Replicas: 2, DesiredReplicas: 2,
			Conditions: []metav1.Condition{{Type: v1alpha1.ConditionReady, Status: metav1.ConditionTrue, Reason: v1alpha1.ReasonReady}},
			Lag: &v1alpha1.LagStatus{Total: total, GroupState: "Stable", Updated: &metav1.Time{Time: updated},
				Partitions: []v1alpha1.PartitionLagStatus{{Topic: "t", Partition: 0, Lag: total, EndOffset: 100 + total, Health: "OK"}}},
		}
	}
	tests := []struct {
		name      string
		next      func() *v1alpha1.EventConsumerStatus
		now       time.Time
		write     bool
		wantAfter time.Duration
	}{
		{"nothing changed", func() *v1alpha1.EventConsumerStatus { return base(5, t0) }, t0.Add(time.Minute), false, 0},
		{"only updated moved: lag stands still", func() *v1alpha1.EventConsumerStatus { return base(5, t0.Add(50*time.Second)) }, t0.Add(50 * time.Second), false, 0},
		{"lag moved within the interval", func() *v1alpha1.EventConsumerStatus { return base(9, t0.Add(10*time.Second)) }, t0.Add(10 * time.Second), false, 20 * time.Second},
		{"lag moved after the interval", func() *v1alpha1.EventConsumerStatus { return base(9, t0.Add(30*time.Second)) }, t0.Add(30 * time.Second), true, 0},
		{"replicas changed", func() *v1alpha1.EventConsumerStatus {
			s := base(9, t0.Add(time.Second))
			s.DesiredReplicas = 3
			return s
		}, t0.Add(time.Second), true, 0},
		{"condition changed", func() *v1alpha1.EventConsumerStatus {
			s := base(5, t0.Add(time.Second))
			s.Conditions[0].Reason = v1alpha1.ReasonKafkaUnreachable
			return s
		}, t0.Add(time.Second), true, 0},
		{"partition health changed", func() *v1alpha1.EventConsumerStatus {
			s := base(5, t0.Add(time.Second))
			s.Lag.Partitions[0].Health = "STALL"
			return s
		}, t0.Add(time.Second), true, 0},
		{"group state changed", func() *v1alpha1.EventConsumerStatus {
			s := base(5, t0.Add(time.Second))
			s.Lag.GroupState = "Empty"
			return s
		}, t0.Add(time.Second), true, 0},
		{"stale", func() *v1alpha1.EventConsumerStatus {
			s := base(5, t0.Add(time.Second))
			s.Lag.Stale = true
			return s
		}, t0.Add(time.Second), true, 0},
		{"first lag reading", func() *v1alpha1.EventConsumerStatus { return base(5, t0) }, t0, true, 0},
		{"another healthy partition among the top 64", func() *v1alpha1.EventConsumerStatus {
			s := base(9, t0.Add(10*time.Second))
			s.Lag.Partitions[0].Partition = 70
			return s
		}, t0.Add(10 * time.Second), false, 20 * time.Second},
		{"an unhealthy partition among the top 64", func() *v1alpha1.EventConsumerStatus {
			s := base(9, t0.Add(10*time.Second))
			s.Lag.Partitions[0].Partition, s.Lag.Partitions[0].Health = 70, "STOP"
			return s
		}, t0.Add(10 * time.Second), true, 0},
		{"the first dead letter", func() *v1alpha1.EventConsumerStatus {
			s := base(5, t0.Add(10*time.Second))
			s.Lag.DeadLetters = &v1alpha1.DeadLetterStatus{Topic: "t-dlt", Records: 2, RatePerSecond: 0.2}
			return s
		}, t0.Add(10 * time.Second), true, 0},
		{"more dead letters within the interval", func() *v1alpha1.EventConsumerStatus {
			s := base(5, t0.Add(10*time.Second))
			s.Lag.DeadLetters = &v1alpha1.DeadLetterStatus{Topic: "t-dlt", Records: 9, RatePerSecond: 0.7}
			return s
		}, t0.Add(10 * time.Second), false, 20 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			orig := base(5, t0)
			switch tt.name {
			case "first lag reading":
				orig.Lag = nil
			case "more dead letters within the interval":
				orig.Lag.DeadLetters = &v1alpha1.DeadLetterStatus{Topic: "t-dlt", Records: 2, RatePerSecond: 0.2}
			}
			write, after := statusWrite(orig, tt.next(), tt.now, DefaultStatusInterval)
			if write != tt.write || after != tt.wantAfter {
				t.Fatalf("write=%v after=%s, want write=%v after=%s", write, after, tt.write, tt.wantAfter)
			}
		})
	}
}

// TestLagPollsDoNotWriteStatus feeds a consumer 20 polls with unchanged lag
// and 20 with moving lag inside one status interval, then one group-state
// change. The API server must see exactly one status write, the last, and
// it must carry the latest figures.
func TestLagPollsDoNotWriteStatus(t *testing.T) {
	fake := &fakeLag{snaps: map[lag.ConsumerKey]lag.Snapshot{}}
	op := startOperator(t, func(r *EventConsumerReconciler) { r.Lag = fake; r.StatusInterval = time.Hour })
	ns := namespace(t)
	key := lag.ConsumerKey{Namespace: ns, Name: "quiet"}
	snap := func(total int64, state string) lag.Snapshot {
		return lag.Snapshot{Time: time.Now(), Reachable: true, PartitionCount: 1, TotalLag: total, GroupState: state, Members: 1,
			Partitions: []lag.PartitionLag{{Topic: "t", Partition: 0, Lag: total, EndOffset: 100 + total, CommittedOffset: 100, Health: "OK"}}}
	}
	fake.set(key, snap(5, "Stable"))
	createConsumer(t, ns, "quiet", v1alpha1.EventConsumerSpec{
		Topics: []string{"t"}, ConsumerGroup: "g",
		Kafka:   v1alpha1.KafkaConnection{BootstrapServers: []string{"k:9092"}},
		Handler: &v1alpha1.HandlerSpec{Image: "handler:1"},
		Scaling: v1alpha1.ScalingSpec{Policy: v1alpha1.PolicyLagThreshold, MinReplicas: ptrTo[int32](1), MaxReplicas: ptrTo[int32](1)},
	})
	eventually(t, wait, func() error {
		if l := getConsumer(t, ns, "quiet").Status.Lag; l == nil || l.Total != 5 {
			return fmt.Errorf("status.lag %+v, want total 5", l)
		}
		return nil
	})
	// Let the reconciles that follow creation (the Deployment's own status)
	// settle before counting.
	time.Sleep(time.Second)

	wc, err := client.NewWithWatch(env.Admin, client.Options{Scheme: env.Client.Scheme()})
	if err != nil {
		t.Fatal(err)
	}
	w, err := wc.Watch(context.Background(), &v1alpha1.EventConsumerList{}, client.InNamespace(ns),
		client.MatchingFieldsSelector{Selector: fields.OneTermEqualSelector("metadata.name", "quiet")},
		&client.ListOptions{Raw: &metav1.ListOptions{ResourceVersion: getConsumer(t, ns, "quiet").ResourceVersion}})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()

	for i := 0; i < 20; i++ {
		fake.set(key, snap(5, "Stable"))
		op.rec.LagChanged(key)
		time.Sleep(50 * time.Millisecond)
	}
	for i := int64(1); i <= 20; i++ {
		fake.set(key, snap(5+i, "Stable"))
		op.rec.LagChanged(key)
		time.Sleep(50 * time.Millisecond)
	}
	fake.set(key, snap(25, "Empty"))
	op.rec.LagChanged(key)

	var writes []string
	timeout := time.After(wait)
	for {
		select {
		case ev := <-w.ResultChan():
			if ev.Type != watch.Modified {
				continue
			}
			ec := ev.Object.(*v1alpha1.EventConsumer)
			writes = append(writes, fmt.Sprintf("total=%d state=%s", ec.Status.Lag.Total, ec.Status.Lag.GroupState))
			if ec.Status.Lag.GroupState != "Empty" {
				continue
			}
			if len(writes) != 1 || ec.Status.Lag.Total != 25 {
				t.Fatalf("status writes %v: want only the group-state change, with total=25", writes)
			}
			return
		case <-timeout:
			t.Fatalf("the group-state change was not written; writes seen: %v", writes)
		}
	}
}

// TestStatusBudgetBooking: writes of live figures are booked in turn, and
// a turn further away than the caller waits is refused without being
// reserved, so the next attempt gets it.
func TestStatusBudgetBooking(t *testing.T) {
	b := NewStatusBudget(2) // 2 a second, a burst of 2
	now := time.Unix(1_700_000_000, 0)
	var got []time.Duration
	for range 3 {
		after, ok := b.book(now, time.Second)
		if !ok {
			t.Fatalf("booking %d refused, want a turn within 1s", len(got)+1)
		}
		got = append(got, after)
	}
	if got[0] != 0 || got[1] != 0 || got[2] != 500*time.Millisecond {
		t.Fatalf("turns %v, want [0s 0s 500ms]", got)
	}
	if _, ok := b.book(now, 800*time.Millisecond); ok {
		t.Fatal("a turn 1s away booked within 800ms")
	}
	if after, ok := b.book(now, time.Second); !ok || after != time.Second {
		t.Fatalf("after a refusal: %v, %v; want the turn the refusal did not take, 1s", after, ok)
	}
	var none *StatusBudget
	if after, ok := none.book(now, 0); !ok || after != 0 {
		t.Fatalf("no budget: %v, %v; want at once", after, ok)
	}
}

// TestStatusBudgetOutOfOrderTimes: callers pass the time their work
// started, out of order. An earlier time after a later one must not refill
// the tokens of the span between them.
func TestStatusBudgetOutOfOrderTimes(t *testing.T) {
	b := NewStatusBudget(2) // 2 a second, a burst of 2
	now := time.Unix(1_700_000_000, 0)
	for i := range 2 {
		if !b.allow(now) {
			t.Fatalf("write %d refused within the burst", i+1)
		}
	}
	early := now.Add(-500 * time.Millisecond)
	if b.allow(early) || b.allow(now) || b.allow(now) {
		t.Fatal("a write allowed past the burst: an earlier time refilled the budget")
	}
	if after := b.reserve(early); after != time.Second {
		t.Fatalf("a turn reserved at an earlier time is %v away from it, want 1s (500ms after now)", after)
	}
	if b.allow(now.Add(900 * time.Millisecond)) {
		t.Fatal("a write allowed at now+900ms: the first token after now is the reservation's")
	}
}

func TestStatusBudgetShare(t *testing.T) {
	b := NewStatusBudget(30)
	now := time.Unix(1_700_000_000, 0)
	b.Share(3)
	if got := b.PerSecond(); got != 10 {
		t.Fatalf("one of three replicas writes at %v/s, want 10", got)
	}
	// A burst of one second's worth of the share, not of the whole.
	n := 0
	for b.allow(now) {
		n++
	}
	if n != 10 {
		t.Fatalf("one of three replicas wrote %d at once, want its burst of 10", n)
	}
	b.Share(0)
	if got := b.PerSecond(); got != 30 {
		t.Fatalf("with no member counted the replica writes at %v/s, want the whole 30", got)
	}
	b.Share(2)
	if after := b.reserve(now); after != 66666666*time.Nanosecond && after != 66666667*time.Nanosecond {
		t.Fatalf("a turn after the burst, one of two replicas: %v away, want 1/15 s", after)
	}
}

// TestStatusBudgetHoldsLateTurns: turns booked at the budget's pace whose
// reconciles all run late, behind a deep queue, must not all write at
// once. On time, every one of them writes.
func TestStatusBudgetHoldsLateTurns(t *testing.T) {
	const perSecond = 10
	now := time.Unix(1_700_000_000, 0)
	book := func(b *StatusBudget) []time.Time {
		var turns []time.Time
		for range 50 {
			after, ok := b.book(now, 30*time.Second)
			if !ok {
				t.Fatal("50 turns at 10/s did not fit within 30 s")
			}
			turns = append(turns, now.Add(after))
		}
		return turns
	}

	onTime := NewStatusBudget(perSecond)
	for i, turn := range book(onTime) {
		if ok, _ := onTime.admit(turn); !ok {
			t.Fatalf("turn %d, written on time at %v, was refused", i+1, turn.Sub(now))
		}
	}

	late := NewStatusBudget(perSecond)
	book(late)
	at := now.Add(time.Minute)
	written := 0
	var retry time.Duration
	for range 50 {
		ok, r := late.admit(at)
		if ok {
			written++
		} else {
			retry = r
		}
	}
	if written > perSecond {
		t.Fatalf("%d writes of late turns went in one instant, want at most a second's worth (%d)", written, perSecond)
	}
	if retry <= 0 || retry > time.Second/perSecond {
		t.Fatalf("a refused write is told to retry in %v, want within one token's time (%v)", retry, time.Second/perSecond)
	}
}
