package lag

import (
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
)

// TestDeadLetterGrowth reads a dead-letter topic beside the group's own:
// its retained records and the rate it grows at, and a missing one is
// said to be missing.
func TestDeadLetterGrowth(t *testing.T) {
	c := newKafka(t, kfake.SeedTopics(2, "orders", "orders-dlt"))
	prod := producer(t, c.ListenAddrs())
	clk := &fakeClock{now: time.Unix(1_700_000_000, 0)}
	e := newEngine(t, Options{Now: clk.Now})
	sub := subscription("orders", c.ListenAddrs(), "orders-g", "orders")
	sub.DeadLetterTopic = "orders-dlt"
	e.Register(sub)
	defer e.Unregister(sub.Consumer)
	mustPoll(t, e, sub)
	if d := mustSnapshot(t, e, sub.Consumer).DeadLetters; d == nil || d.Records != 0 || d.Missing {
		t.Fatalf("dead letters %+v, want an empty existing topic", d)
	}
	produce(t, prod, "orders-dlt", 0, 6)
	produce(t, prod, "orders-dlt", 1, 4)
	clk.Advance(2 * time.Second)
	mustPoll(t, e, sub)
	s := mustSnapshot(t, e, sub.Consumer)
	if d := s.DeadLetters; d == nil || d.Records != 10 || d.Rate != 5 {
		t.Fatalf("dead letters %+v, want 10 records at 5/s", d)
	}
	// The dead-letter topic is no topic of the group: no lag, no partitions.
	if s.PartitionCount != 2 || s.TotalLag != 0 {
		t.Fatalf("partitions %d, lag %d: the dead-letter topic counted as the group's", s.PartitionCount, s.TotalLag)
	}

	gone := subscription("gone", c.ListenAddrs(), "gone-g", "orders")
	gone.DeadLetterTopic = "no-such-dlt"
	e.Register(gone)
	defer e.Unregister(gone.Consumer)
	mustPoll(t, e, gone)
	if d := mustSnapshot(t, e, gone.Consumer).DeadLetters; d == nil || !d.Missing {
		t.Fatalf("dead letters %+v, want missing", d)
	}
	if m := mustSnapshot(t, e, gone.Consumer).MissingTopics; len(m) != 0 {
		t.Fatalf("missing topics %v: a missing dead-letter topic is no missing subscribed topic", m)
	}
}
