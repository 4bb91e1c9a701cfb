package handler_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/lagscale/lagscale/pkg/handler"
)

// A record that is still being handled holds back the commits of its own
// partition (only the handled prefix is committed), while other partitions
// commit independently.
func TestCommitsOnlyTheHandledPrefix(t *testing.T) {
	b := newBroker(t, 2, "orders")
	b.produce("orders", 2, 20, nil)

	release := make(chan struct{})
	blocked := make(chan struct{})
	led := newLedger()
	start(t, func(ctx context.Context, r *kgo.Record) error {
		if r.Partition == 0 && r.Offset == 5 {
			close(blocked)
			<-release
		}
		led.add(r)
		return nil
	}, handler.WithConfig(b.config("g", "orders")))

	<-blocked
	eventually(t, "partition 1 fully committed while partition 0 is blocked", func() bool {
		return b.committed("g", "orders")[1] == 20
	})
	eventually(t, "partition 0 committed up to the blocked record", func() bool {
		return b.committed("g", "orders")[0] == 5
	})
	// Let a few commit intervals pass: nothing past the blocked record may
	// be committed while it is in flight.
	time.Sleep(300 * time.Millisecond)
	if got := b.committed("g", "orders")[0]; got != 5 {
		t.Fatalf("partition 0 committed %d while offset 5 is in flight, want 5", got)
	}
	if n := led.count(0, 6); n != 0 {
		t.Fatalf("offset 6 handled before offset 5 finished: order within a partition is broken")
	}
	close(release)
	eventually(t, "partition 0 fully committed after release", func() bool {
		return b.committed("g", "orders")[0] == 20
	})
}

// A record that fails every attempt goes to the dead-letter topic with
// headers naming where it came from, and the partition moves on.
func TestDeadLettersPoisonRecords(t *testing.T) {
	b := newBroker(t, 1, "orders", "orders-dlt")
	b.produce("orders", 1, 10, func(_ int32, i int) string {
		if i == 3 || i == 7 {
			return "poison"
		}
		return fmt.Sprintf("ok-%d", i)
	})
	cfg := b.config("g", "orders")
	cfg.DeadLetterTopic = "orders-dlt"
	var calls atomic.Int64
	m := start(t, func(_ context.Context, r *kgo.Record) error {
		calls.Add(1)
		if string(r.Value) == "poison" {
			return errors.New("cannot parse order")
		}
		return nil
	}, handler.WithConfig(cfg), handler.WithRetry(3, time.Millisecond, 4*time.Millisecond))

	eventually(t, "all offsets committed", func() bool { return b.committed("g", "orders")[0] == 10 })
	s := m.c.Stats()
	if s.Handled != 8 || s.Failed != 2 || s.DeadLettered != 2 || s.Retries != 4 || len(s.Stalled) != 0 {
		t.Errorf("stats = %+v, want handled 8, failed 2, dead-lettered 2, retries 4", s)
	}
	if got := calls.Load(); got != 8+2*3 {
		t.Errorf("handler called %d times, want 14 (8 + 2 poison x 3 attempts)", got)
	}

	cl, err := kgo.NewClient(kgo.SeedBrokers(b.addrs...), kgo.ConsumeTopics("orders-dlt"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	var dl []*kgo.Record
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for len(dl) < 2 && ctx.Err() == nil {
		dl = append(dl, cl.PollFetches(ctx).Records()...)
	}
	if len(dl) != 2 {
		t.Fatalf("dead-letter topic holds %d records, want 2", len(dl))
	}
	for i, want := range []string{"3", "7"} {
		h := headers(dl[i])
		if string(dl[i].Value) != "poison" || h[handler.HeaderOriginalTopic] != "orders" || h[handler.HeaderOriginalPartition] != "0" ||
			h[handler.HeaderOriginalOffset] != want || h[handler.HeaderAttempts] != "3" || h[handler.HeaderError] != "cannot parse order" {
			t.Errorf("dead letter %d: value %q headers %v", i, dl[i].Value, h)
		}
	}
}

func headers(r *kgo.Record) map[string]string {
	h := map[string]string{}
	for _, kv := range r.Headers {
		h[kv.Key] = string(kv.Value)
	}
	return h
}

// Without a dead-letter topic a record that fails every attempt stops its
// partition: nothing at or after it is committed or handled, the metric
// and Stats say so, and the other partitions carry on.
func TestStallsPartitionWithoutDeadLetterTopic(t *testing.T) {
	b := newBroker(t, 2, "orders")
	b.produce("orders", 2, 10, nil)
	led := newLedger()
	m := start(t, func(_ context.Context, r *kgo.Record) error {
		if r.Partition == 0 && r.Offset == 4 {
			return errors.New("always fails")
		}
		led.add(r)
		return nil
	}, handler.WithConfig(b.config("g", "orders")), handler.WithRetry(2, time.Millisecond, time.Millisecond))

	eventually(t, "partition 1 fully committed", func() bool { return b.committed("g", "orders")[1] == 10 })
	eventually(t, "partition 0 reported stalled", func() bool { return len(m.c.Stats().Stalled) == 1 })
	s := m.c.Stats().Stalled[0]
	if s.Topic != "orders" || s.Partition != 0 || s.Offset != 4 || s.Err != "always fails" {
		t.Errorf("stalled = %+v, want orders/0 at offset 4", s)
	}
	rec := httptest.NewRecorder()
	m.c.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	body, _ := io.ReadAll(rec.Body)
	if !strings.Contains(string(body), "lagscale_handler_partitions_stalled 1") {
		t.Errorf("/metrics does not report the stalled partition:\n%s", grepLines(string(body), "stalled"))
	}
	time.Sleep(300 * time.Millisecond)
	if got := b.committed("g", "orders")[0]; got != 4 {
		t.Errorf("partition 0 committed %d, want 4 (stopped at the failing record)", got)
	}
	for o := int64(5); o < 10; o++ {
		if led.count(0, o) != 0 {
			t.Errorf("offset %d of the stalled partition was handled", o)
		}
	}
	m.stop(t)
	if got := b.committed("g", "orders")[0]; got != 4 {
		t.Errorf("after shutdown partition 0 committed %d, want 4", got)
	}
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// A graceful stop finishes and commits in-flight records; a second member
// of the group continues from there with nothing lost and nothing handled
// twice.
func TestGracefulShutdownHandsOver(t *testing.T) {
	const parts, per = 4, 100
	b := newBroker(t, parts, "orders")
	b.produce("orders", parts, per, nil)
	led := newLedger()
	var n atomic.Int64
	slow := func(ctx context.Context, r *kgo.Record) error {
		time.Sleep(2 * time.Millisecond)
		led.add(r)
		n.Add(1)
		return nil
	}
	a := start(t, slow, handler.WithConfig(b.config("g", "orders")), handler.WithMaxPollRecords(50))
	eventually(t, "first member handled some records", func() bool { return n.Load() >= 60 })
	a.stop(t)

	// Everything the first member handled is committed: for each
	// partition the handled offsets are exactly [0, committed).
	committed := b.committed("g", "orders")
	for p := int32(0); p < parts; p++ {
		for o := int64(0); o < per; o++ {
			if h := led.count(p, o) > 0; h != (o < committed[p]) {
				t.Fatalf("partition %d offset %d handled=%v but committed offset is %d", p, o, h, committed[p])
			}
		}
	}
	if n.Load() >= parts*per {
		t.Fatalf("first member handled everything before stopping; the test proves nothing")
	}

	start(t, slow, handler.WithConfig(b.config("g", "orders")))
	ends := b.waitCommittedToEnd(t, "g", "orders", "second member committed to the end")
	missing, dups := led.check(ends)
	if missing != 0 || dups != 0 {
		t.Fatalf("missing %d, duplicates %d; want 0 and 0", missing, dups)
	}
}

// The "no loss under churn": records are produced while members
// join and leave (3 -> 6 -> 2 -> 5, each leaving like SIGTERM); at the end
// every record was handled at least once and the group committed the end
// offsets. Duplicates are reported; they must stay below one poll batch per
// rebalance.
//
// It runs once with the classic protocol and once with KIP-848's consumer
// protocol (KAFKA_GROUP_TYPE=consumer, kgo.ServerSideBalancer), where the
// broker moves partitions member by member.
func TestNoRecordLostWhileReplicasComeAndGo(t *testing.T) {
	for _, gt := range []string{handler.GroupClassic, handler.GroupConsumer} {
		t.Run(gt, func(t *testing.T) { noRecordLostWhileReplicasComeAndGo(t, gt) })
	}
}

func noRecordLostWhileReplicasComeAndGo(t *testing.T, groupType string) {
	const parts = 12
	total := 100_000
	if testing.Short() {
		total = 12_000
	}
	per := total / parts
	b := newBroker(t, parts, "orders")
	led := newLedger()
	fn := func(_ context.Context, r *kgo.Record) error {
		if r.Offset%97 == 0 {
			time.Sleep(time.Millisecond)
		}
		led.add(r)
		return nil
	}
	const maxPoll = 500
	cfg := b.config("g", "orders")
	cfg.GroupType = groupType
	opts := []handler.Option{handler.WithConfig(cfg), handler.WithMaxPollRecords(maxPoll)}

	producing := make(chan struct{})
	go func() {
		defer close(producing)
		for i := 0; i < 4; i++ {
			b.produce("orders", parts, per/4, nil)
			time.Sleep(100 * time.Millisecond)
		}
	}()

	var members []*member
	rebalances := 0
	scaleTo := func(n int) {
		for len(members) < n {
			members = append(members, start(t, fn, opts...))
			rebalances++
		}
		for len(members) > n {
			last := members[len(members)-1]
			members = members[:len(members)-1]
			last.stop(t)
			rebalances++
		}
	}
	handled := led.distinct
	for i, n := range []int{3, 6, 2, 5} {
		scaleTo(n)
		step := (i + 1) * total / 5
		eventually(t, fmt.Sprintf("%d distinct records handled", step), func() bool { return handled() >= step })
	}
	<-producing
	ends := b.waitCommittedToEnd(t, "g", "orders", "group committed the end offsets")
	// The members really ran the protocol asked for: the broker describes
	// the five of them with that protocol's describe. A classic group may
	// still be rebalancing onto the fifth member, when its describe lists
	// only the members that have joined again so far.
	if groupType == handler.GroupConsumer {
		gs, err := b.adm.DescribeConsumerGroups(context.Background(), "g")
		if err != nil || gs["g"].Err != nil || len(gs["g"].Members) != 5 {
			t.Fatalf("ConsumerGroupDescribe: %v, %+v; want a KIP-848 group of 5 members", err, gs["g"])
		}
	} else {
		eventually(t, "DescribeGroups lists a classic group of 5 members", func() bool {
			gs, err := b.adm.DescribeGroups(context.Background(), "g")
			return err == nil && gs["g"].ProtocolType == "consumer" && len(gs["g"].Members) == 5
		})
	}
	scaleTo(0)
	if c := b.committed("g", "orders"); len(c) != parts {
		t.Fatalf("committed offsets for %d partitions, want %d", len(c), parts)
	}
	missing, dups := led.check(ends)
	t.Logf("groupType=%s records=%d rebalances=%d duplicates=%d", groupType, total, rebalances, dups)
	if missing != 0 {
		t.Fatalf("%d records never handled", missing)
	}
	if limit := rebalances * maxPoll; dups > limit {
		t.Fatalf("%d duplicates, want at most one poll batch (%d) per rebalance (%d)", dups, maxPoll, limit)
	}
}

// TestRebalanceWithAQueuedBacklogLosesNothing makes every rebalance land
// while a member holds a large backlog taken from kgo but not handled yet
// (one poll takes everything buffered, batches are cut from it). The
// member must hand every unhandled record back: partitions it keeps are
// rewound and fetched again, partitions it gives up restart from the
// committed offset at their next owner. A record dropped with the queue
// would show up as missing. Partition 0 is slow, so the others finish
// their share of a batch early and wait with records still queued: those
// are cut short without being in the batch.
func TestRebalanceWithAQueuedBacklogLosesNothing(t *testing.T) {
	const parts, per = 6, 400
	b := newBroker(t, parts, "backlog")
	b.produce("backlog", parts, per, nil)
	led := newLedger()
	fn := func(_ context.Context, r *kgo.Record) error {
		if r.Partition == 0 {
			time.Sleep(3 * time.Millisecond)
		}
		led.add(r)
		return nil
	}
	opts := []handler.Option{handler.WithConfig(b.config("g", "backlog")), handler.WithMaxPollRecords(60)}
	handled := led.distinct
	// One member takes the whole backlog in its first poll; each member
	// that joins later comes while most of it is still queued.
	first := start(t, fn, opts...)
	eventually(t, "the first member to start handling", func() bool { return handled() >= 100 })
	second := start(t, fn, opts...)
	eventually(t, "a third of the records handled", func() bool { return handled() >= parts*per/3 })
	third := start(t, fn, opts...)
	// Nobody leaves: a partition a member keeps is never handed to another
	// member that would start it again from the committed offset, so a
	// record skipped by its owner would hold the group below the end.
	ends := b.waitCommittedToEnd(t, "g", "backlog", "group committed the end offsets")
	for _, m := range []*member{first, second, third} {
		m.stop(t)
	}
	missing, dups := led.check(ends)
	t.Logf("records=%d duplicates=%d", parts*per, dups)
	if missing != 0 {
		t.Fatalf("%d records never handled", missing)
	}
}

// The handler's metrics are counted per worker and merged in batches; a
// scrape after the work must still show every call, and a slow call among
// fast ones must not be averaged into the fast bucket.
func TestMetricsCountEveryCall(t *testing.T) {
	b := newBroker(t, 2, "m")
	b.produce("m", 2, 110, func(_ int32, i int) string {
		if i%11 == 5 {
			return "slow"
		}
		return "fast"
	})
	reg := prometheus.NewRegistry()
	m := start(t, func(_ context.Context, r *kgo.Record) error {
		if string(r.Value) == "slow" {
			time.Sleep(3 * time.Millisecond)
		}
		return nil
	}, handler.WithConfig(b.config("g", "m")), handler.WithRegistry(reg))
	eventually(t, "all offsets committed", func() bool {
		c := b.committed("g", "m")
		return c[0] == 110 && c[1] == 110
	})
	m.stop(t)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var handled float64
	var hist *dto.Histogram
	for _, mf := range mfs {
		switch mf.GetName() {
		case "lagscale_handler_records_handled_total":
			handled = mf.GetMetric()[0].GetCounter().GetValue()
		case "lagscale_handler_handling_seconds":
			hist = mf.GetMetric()[0].GetHistogram()
		}
	}
	if handled != 220 || hist == nil || hist.GetSampleCount() != 220 {
		t.Fatalf("handled %v, histogram %v: want 220 calls in both", handled, hist)
	}
	// 20 calls slept 3 ms: none may be counted at or under 2 ms, and the
	// sum holds at least their 60 ms.
	var under2ms uint64
	for _, bk := range hist.GetBucket() {
		if bk.GetUpperBound() == 0.002 {
			under2ms = bk.GetCumulativeCount()
		}
	}
	if under2ms > 200 || hist.GetSampleSum() < 0.060 {
		t.Errorf("%d calls counted at or under 2 ms (want at most the 200 fast ones), sum %.4fs (want >= 0.060)", under2ms, hist.GetSampleSum())
	}
}
