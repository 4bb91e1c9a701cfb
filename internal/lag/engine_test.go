package lag

import (
	"context"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
)

// groupConsumer joins group on topics with auto-commit off, so the test
// decides what is committed.
func groupConsumer(t testing.TB, addrs []string, group string, topics ...string) *kgo.Client {
	return newClient(t, addrs,
		kgo.ConsumerGroup(group),
		kgo.ConsumeTopics(topics...),
		kgo.DisableAutoCommit(),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchMaxWait(100*time.Millisecond),
	)
}

// consume polls until at least n records arrived and returns them.
func consume(t testing.TB, cl *kgo.Client, n int) []*kgo.Record {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var recs []*kgo.Record
	for len(recs) < n {
		fs := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			t.Fatalf("consumed %d of %d records: %v", len(recs), n, err)
		}
		fs.EachError(func(topic string, p int32, err error) { t.Fatalf("fetch %s/%d: %v", topic, p, err) })
		recs = append(recs, fs.Records()...)
	}
	return recs
}

// waitStable waits until the group is Stable with members assigned.
func waitStable(t testing.TB, adm *kadm.Client, group string) {
	t.Helper()
	waitFor(t, "group "+group+" to be Stable", 20*time.Second, func() bool {
		gs, err := adm.DescribeGroups(context.Background(), group)
		if err != nil {
			return false
		}
		g := gs[group]
		return g.State == "Stable" && len(g.AssignedPartitions()) > 0
	})
}

// assertMatchesKadm checks the snapshot's lag against kadm's computation on
// every partition kadm reports, and that kadm reports every partition.
func assertMatchesKadm(t *testing.T, s Snapshot, want map[tp]int64) {
	t.Helper()
	if len(want) != len(s.Partitions) {
		t.Fatalf("kadm reports %d partitions, snapshot %d: %v vs %+v", len(want), len(s.Partitions), want, s.Partitions)
	}
	var total int64
	for _, pl := range s.Partitions {
		w, ok := want[tp{pl.Topic, pl.Partition}]
		if !ok {
			t.Fatalf("kadm has no lag for %s/%d", pl.Topic, pl.Partition)
		}
		if pl.Lag != w {
			t.Errorf("%s/%d: lag %d, kadm %d (%+v)", pl.Topic, pl.Partition, pl.Lag, w, pl)
		}
		total += w
	}
	if s.TotalLag != total {
		t.Errorf("total lag %d, kadm %d", s.TotalLag, total)
	}
}

func TestLagMatchesKadm(t *testing.T) {
	kf := newKafka(t, kfake.SeedTopics(3, "orders"), kfake.SeedTopics(2, "events"), kfake.SeedTopics(2, "a"), kfake.SeedTopics(1, "b"))
	addrs := kf.ListenAddrs()
	prod := producer(t, addrs)
	adm := kadm.NewClient(newClient(t, addrs))
	ctx := context.Background()

	t.Run("group mid-consumption", func(t *testing.T) {
		for p := range int32(3) {
			produce(t, prod, "orders", p, 50)
		}
		cons := groupConsumer(t, addrs, "mid", "orders")
		recs := consume(t, cons, 60)
		if err := cons.CommitRecords(ctx, recs[:len(recs)/2]...); err != nil {
			t.Fatalf("commit: %v", err)
		}
		waitStable(t, adm, "mid")

		e := newEngine(t, Options{})
		sub := subscription("mid", addrs, "mid", "orders")
		sub.OffsetResetPolicy = ResetEarliest // kadm counts an uncommitted partition from its start
		e.Register(sub)
		mustPoll(t, e, sub)
		s := mustSnapshot(t, e, sub.Consumer)
		assertMatchesKadm(t, s, kadmLag(t, adm, "mid"))
		if s.GroupState != "Stable" || s.Members != 1 || s.PartitionCount != 3 || !s.Reachable || s.Stale {
			t.Fatalf("snapshot header = %+v", s)
		}
	})

	t.Run("group never committed", func(t *testing.T) {
		for p := range int32(2) {
			produce(t, prod, "events", p, 40)
		}
		del := make(kadm.Offsets)
		del.AddOffset("events", 0, 15, -1)
		del.AddOffset("events", 1, 25, -1)
		if _, err := adm.DeleteRecords(ctx, del); err != nil {
			t.Fatalf("delete records: %v", err)
		}
		cons := groupConsumer(t, addrs, "fresh", "events")
		consume(t, cons, 1)
		waitStable(t, adm, "fresh")

		e := newEngine(t, Options{})
		earliest := subscription("fresh-earliest", addrs, "fresh", "events")
		earliest.OffsetResetPolicy = ResetEarliest
		latest := subscription("fresh-latest", addrs, "fresh", "events")
		e.Register(earliest)
		e.Register(latest)
		mustPoll(t, e, earliest)

		want := kadmLag(t, adm, "fresh")
		se := mustSnapshot(t, e, earliest.Consumer)
		assertMatchesKadm(t, se, want)
		if pl := partitionOf(t, se, "events", 0); pl.LogStartOffset != 15 || pl.Lag != 25 || pl.HasCommit || pl.CommittedOffset != -1 {
			t.Fatalf("events/0 with earliest = %+v, want log start 15, lag 25, no commit", pl)
		}
		if pl := partitionOf(t, se, "events", 1); pl.LogStartOffset != 25 || pl.Lag != 15 {
			t.Fatalf("events/1 with earliest = %+v, want log start 25, lag 15", pl)
		}
		sl := mustSnapshot(t, e, latest.Consumer)
		for _, pl := range sl.Partitions {
			if pl.Lag != 0 || pl.HasCommit {
				t.Fatalf("%s/%d with latest = %+v, want lag 0 and no commit", pl.Topic, pl.Partition, pl)
			}
		}
	})

	t.Run("group on two topics", func(t *testing.T) {
		for p := range int32(2) {
			produce(t, prod, "a", p, 20)
		}
		produce(t, prod, "b", 0, 30)
		cons := groupConsumer(t, addrs, "two", "a", "b")
		recs := consume(t, cons, 70)
		if err := cons.CommitRecords(ctx, recs...); err != nil {
			t.Fatalf("commit: %v", err)
		}
		produce(t, prod, "a", 0, 7)
		produce(t, prod, "a", 1, 3)
		produce(t, prod, "b", 0, 11)
		waitStable(t, adm, "two")

		e := newEngine(t, Options{})
		sub := subscription("two", addrs, "two", "b", "a")
		e.Register(sub)
		mustPoll(t, e, sub)
		s := mustSnapshot(t, e, sub.Consumer)
		assertMatchesKadm(t, s, kadmLag(t, adm, "two"))
		if s.TotalLag != 21 || s.PartitionCount != 3 {
			t.Fatalf("total lag %d over %d partitions, want 21 over 3", s.TotalLag, s.PartitionCount)
		}
		if s.Partitions[0].Topic != "a" || s.Partitions[2].Topic != "b" {
			t.Fatalf("partitions not sorted by topic: %+v", s.Partitions)
		}
	})
}

func TestMissingTopicRecovers(t *testing.T) {
	kf := newKafka(t, kfake.SeedTopics(1, "present"))
	addrs := kf.ListenAddrs()
	e := newEngine(t, Options{})
	sub := subscription("missing", addrs, "g", "present", "later")
	e.Register(sub)
	mustPoll(t, e, sub)
	s := mustSnapshot(t, e, sub.Consumer)
	if len(s.MissingTopics) != 1 || s.MissingTopics[0] != "later" || s.PartitionCount != 1 || !s.Reachable {
		t.Fatalf("snapshot = %+v, want later missing and 1 partition", s)
	}

	adm := kadm.NewClient(newClient(t, addrs))
	if _, err := adm.CreateTopic(context.Background(), 2, 1, nil, "later"); err != nil {
		t.Fatalf("create topic: %v", err)
	}
	waitFor(t, "topic later to be seen", 10*time.Second, func() bool {
		mustPoll(t, e, sub)
		s = mustSnapshot(t, e, sub.Consumer)
		return len(s.MissingTopics) == 0 && s.PartitionCount == 3
	})
}

func TestRegisterSharesAndClosesClusters(t *testing.T) {
	kf := newKafka(t, kfake.SeedTopics(1, "t"))
	addrs := kf.ListenAddrs()
	var changed []ConsumerKey
	e := newEngine(t, Options{OnChange: func(k ConsumerKey) { changed = append(changed, k) }})
	a := subscription("a", addrs, "ga", "t")
	b := subscription("b", addrs, "gb", "t")
	e.Register(a)
	e.Register(b)
	e.Register(a) // unchanged: no-op
	id := a.Cluster.ID()
	st, ok := e.ClusterStatus(id)
	if !ok || st.Consumers != 2 {
		t.Fatalf("cluster status = %+v, %v; want one cluster with 2 consumers", st, ok)
	}

	mustPoll(t, e, a)
	if len(changed) != 2 {
		t.Fatalf("OnChange after first poll = %v, want both consumers", changed)
	}
	changed = nil
	mustPoll(t, e, a)
	if len(changed) != 0 {
		t.Fatalf("OnChange after an identical poll = %v, want none", changed)
	}
	st, _ = e.ClusterStatus(id)
	if !st.Reachable || len(st.Brokers) != 1 || st.Brokers[0] != addrs[0] {
		t.Fatalf("cluster status = %+v, want reachable with broker %s", st, addrs[0])
	}

	// Moving a to another identity leaves b alone on the first cluster.
	moved := a
	moved.Cluster.SASL = &SASLConfig{Mechanism: MechanismPlain, Username: "u", Password: "p"}
	e.Register(moved)
	if st, _ := e.ClusterStatus(id); st.Consumers != 1 {
		t.Fatalf("consumers on the old cluster = %d, want 1", st.Consumers)
	}
	e.Unregister(b.Consumer)
	if _, ok := e.ClusterStatus(id); ok {
		t.Fatal("cluster still present after its last consumer left")
	}
	if _, ok := e.Snapshot(b.Consumer); ok {
		t.Fatal("snapshot kept after Unregister")
	}
	e.Unregister(moved.Consumer)
	if _, ok := e.ClusterStatus(moved.Cluster.ID()); ok {
		t.Fatal("moved cluster still present after Unregister")
	}
}

func TestStallAndRewind(t *testing.T) {
	kf := newKafka(t, kfake.SeedTopics(1, "work"))
	addrs := kf.ListenAddrs()
	prod := producer(t, addrs)
	adm := kadm.NewClient(newClient(t, addrs))
	ctx := context.Background()

	produce(t, prod, "work", 0, 100)
	cons := groupConsumer(t, addrs, "slow", "work")
	recs := consume(t, cons, 100)
	if err := cons.CommitRecords(ctx, recs[:50]...); err != nil {
		t.Fatalf("commit: %v", err)
	}
	waitStable(t, adm, "slow")

	clock := &fakeClock{now: t0}
	e := newEngine(t, Options{Now: clock.Now, HealthWindow: 3})
	sub := subscription("slow", addrs, "slow", "work")
	e.Register(sub)

	// The member stays in the group but commits nothing more while records
	// keep arriving: once the window is covered the partition is STALL.
	var health []Health
	for range 5 {
		mustPoll(t, e, sub)
		health = append(health, partitionOf(t, mustSnapshot(t, e, sub.Consumer), "work", 0).Health)
		produce(t, prod, "work", 0, 5)
		clock.Advance(time.Second)
	}
	if health[0] != HealthOK || health[len(health)-1] != HealthStall {
		t.Fatalf("health over polls = %v, want OK first and STALL last", health)
	}

	// Resetting the group backwards is a REWIND.
	cons.Close()
	waitFor(t, "group to be empty", 10*time.Second, func() bool {
		gs, err := adm.DescribeGroups(ctx, "slow")
		return err == nil && gs["slow"].State == "Empty"
	})
	reset := make(kadm.Offsets)
	reset.AddOffset("work", 0, 10, -1)
	if err := adm.CommitAllOffsets(ctx, "slow", reset); err != nil {
		t.Fatalf("rewind commit: %v", err)
	}
	mustPoll(t, e, sub)
	pl := partitionOf(t, mustSnapshot(t, e, sub.Consumer), "work", 0)
	if pl.Health != HealthRewind || pl.CommittedOffset != 10 {
		t.Fatalf("after rewind = %+v, want REWIND at 10", pl)
	}

	// Without members and without commits the partition ends as STOP once
	// the rewind is out of the window.
	for range 4 {
		clock.Advance(time.Second)
		mustPoll(t, e, sub)
	}
	if s := mustSnapshot(t, e, sub.Consumer); s.Partitions[0].Health != HealthStop || s.Members != 0 {
		t.Fatalf("after the consumer left = %+v, want STOP with no members", s)
	}
}

func TestRequestsPerCycleIndependentOfGroups(t *testing.T) {
	const brokers = 3
	kf := newKafka(t, kfake.NumBrokers(brokers), kfake.SeedTopics(6, "shared"))
	addrs := kf.ListenAddrs()
	adm := kadm.NewClient(newClient(t, addrs))
	prod := producer(t, addrs)
	for p := range int32(6) {
		produce(t, prod, "shared", p, 3)
	}

	// requestsFor registers n consumers with their own committed groups and
	// returns the request count of a warm cycle.
	requestsFor := func(t *testing.T, n int) (map[string]int, int) {
		e := newEngine(t, Options{})
		var sub Subscription
		for i := range n {
			g := "group-" + itoa(n) + "-" + itoa(i)
			offs := make(kadm.Offsets)
			offs.AddOffset("shared", int32(i%6), 0, -1)
			if err := adm.CommitAllOffsets(context.Background(), g, offs); err != nil {
				t.Fatalf("commit for %s: %v", g, err)
			}
			sub = subscription("c-"+itoa(i), addrs, g, "shared")
			// Cycles run back to back here; a short interval makes each
			// refresh metadata as it would an interval apart.
			sub.PollInterval = time.Millisecond
			e.Register(sub)
		}
		mustPoll(t, e, sub) // connects, finds coordinators, reads timestamps at 0
		mustPoll(t, e, sub)
		// Every group moves to offset 1, older than the end-offset
		// history and not covered by the timestamps read at 0: the
		// measured cycle reads the records' timestamps again, one Fetch
		// per leader whatever the number of groups.
		for i := range n {
			offs := make(kadm.Offsets)
			offs.AddOffset("shared", int32(i%6), 1, -1)
			if err := adm.CommitAllOffsets(context.Background(), "group-"+itoa(n)+"-"+itoa(i), offs); err != nil {
				t.Fatalf("commit: %v", err)
			}
		}
		mustPoll(t, e, sub)
		byAPI, total := e.LastCycleRequests(sub.Cluster.ID())
		for i := range n {
			s := mustSnapshot(t, e, key("c-"+itoa(i)))
			if s.Stale || len(s.Partitions) != 6 || !s.Partitions[i%6].HasCommit || s.Partitions[i%6].CommittedOffset != 1 {
				t.Fatalf("consumer %d snapshot = %+v", i, s)
			}
		}
		if byAPI["Fetch"] == 0 {
			t.Fatalf("%d groups: the measured cycle read no timestamps %v; the bound below would not count them", n, byAPI)
		}
		return byAPI, total
	}

	byAPI200, total200 := requestsFor(t, 200)
	byAPI5, total5 := requestsFor(t, 5)
	t.Logf("requests per cycle: 200 groups %d %v; 5 groups %d %v", total200, byAPI200, total5, byAPI5)

	// One Metadata, start and end ListOffsets per leader, one OffsetFetch and
	// one DescribeGroups per coordinator, and at most one FindCoordinator
	// batch: nothing scales with the number of groups. These groups have no
	// members, so each coordinator is also asked once with
	// ConsumerGroupDescribe and once with ShareGroupDescribe whether it
	// knows them under another type. The records' timestamps at the
	// commits (and the transaction markers after them) are read with at
	// most one Fetch per leader.
	bound := 1 + 2*brokers + 2*brokers + 2*brokers + 1 + brokers
	if total200 > bound {
		t.Fatalf("200 groups: %d requests per cycle %v, bound %d", total200, byAPI200, bound)
	}
	if byAPI200["Metadata"] != 1 {
		t.Fatalf("200 groups: %d Metadata requests per cycle, want exactly 1 %v", byAPI200["Metadata"], byAPI200)
	}
	if byAPI200["OffsetFetch"] > brokers || byAPI200["DescribeGroups"] > brokers || byAPI200["ConsumerGroupDescribe"] > brokers || byAPI200["ShareGroupDescribe"] > brokers || byAPI200["Metadata"] > 1 || byAPI200["ListOffsets"] > 2*brokers || byAPI200["Fetch"] > brokers {
		t.Fatalf("200 groups: per-API requests %v exceed the per-broker bounds", byAPI200)
	}
}

func itoa(i int) string { return fmtInt(i) }

// TestUnevenLeadersAndALeaderMove puts seven of eight partitions on one
// broker, one on another and none on the third: ListOffsets goes to the two
// leaders only, and lag still equals kadm's on every partition. Then a
// partition's leadership moves between cycles: the next cycle follows it
// (franz-go refreshes metadata on NOT_LEADER_OR_FOLLOWER) and lag stays
// right.
func TestUnevenLeadersAndALeaderMove(t *testing.T) {
	kf := newKafka(t, kfake.NumBrokers(3), kfake.SeedTopics(8, "u"))
	for p := range int32(8) {
		node := int32(0)
		if p == 7 {
			node = 2
		}
		if err := kf.MoveTopicPartition("u", p, node); err != nil {
			t.Fatalf("moving u/%d to node %d: %v", p, node, err)
		}
	}
	addrs := kf.ListenAddrs()
	prod := producer(t, addrs)
	adm := kadm.NewClient(newClient(t, addrs))
	ctx := context.Background()
	for p := range int32(8) {
		produce(t, prod, "u", p, 10+int(p))
	}
	offs := make(kadm.Offsets)
	for p := range int32(8) {
		offs.AddOffset("u", p, int64(p), -1)
	}
	if err := adm.CommitAllOffsets(ctx, "uneven", offs); err != nil {
		t.Fatalf("commit: %v", err)
	}

	e := newEngine(t, Options{})
	sub := subscription("uneven", addrs, "uneven", "u")
	sub.OffsetResetPolicy = ResetEarliest
	sub.PollInterval = time.Millisecond
	e.Register(sub)
	mustPoll(t, e, sub)
	mustPoll(t, e, sub)
	assertMatchesKadm(t, mustSnapshot(t, e, sub.Consumer), kadmLag(t, adm, "uneven"))
	byAPI, total := e.LastCycleRequests(sub.Cluster.ID())
	t.Logf("requests per cycle with leaders on nodes 0 (7 partitions) and 2 (1): %d %v", total, byAPI)
	if byAPI["ListOffsets"] != 4 {
		t.Fatalf("ListOffsets requests %d, want 4: start and end to each of the two leaders %v", byAPI["ListOffsets"], byAPI)
	}

	// Leadership of u/7 moves to node 1; records keep arriving.
	if err := kf.MoveTopicPartition("u", 7, 1); err != nil {
		t.Fatalf("moving u/7: %v", err)
	}
	produce(t, prod, "u", 7, 5)
	waitFor(t, "lag to follow the moved leader", 20*time.Second, func() bool {
		mustPoll(t, e, sub)
		s := mustSnapshot(t, e, sub.Consumer)
		p7 := partitionOf(t, s, "u", 7)
		return !s.Stale && p7.Error == "" && p7.EndOffset == 22
	})
	assertMatchesKadm(t, mustSnapshot(t, e, sub.Consumer), kadmLag(t, adm, "uneven"))
}
