package lag

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
)

// TestConsumerGroupMembersAndLag joins three KIP-848 members
// (kgo.ServerSideBalancer) and checks that the snapshot reports them, their
// assignment and kadm's lag; and that a subscription that still says
// classic reports the type on the broker instead of an empty group.
func TestConsumerGroupMembersAndLag(t *testing.T) {
	kf := newKafka(t, kfake.SeedTopics(6, "orders"))
	addrs := kf.ListenAddrs()
	prod := producer(t, addrs)
	adm := kadm.NewClient(newClient(t, addrs))
	ctx := context.Background()
	for p := range int32(6) {
		produce(t, prod, "orders", p, 40)
	}

	var members []*kgo.Client
	for range 3 {
		members = append(members, newClient(t, addrs,
			kgo.ConsumerGroup("kip848"),
			kgo.ConsumeTopics("orders"),
			kgo.ServerSideBalancer(),
			kgo.DisableAutoCommit(),
			kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
			kgo.FetchMaxWait(100*time.Millisecond),
		))
	}
	// Every member polls until the broker has assigned all six partitions
	// over the three of them at the group's epoch.
	var mu sync.Mutex
	got := make([][]*kgo.Record, len(members))
	pollCtx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	for i, m := range members {
		wg.Go(func() {
			for pollCtx.Err() == nil {
				fs := m.PollFetches(pollCtx)
				mu.Lock()
				got[i] = append(got[i], fs.Records()...)
				mu.Unlock()
			}
		})
	}
	waitFor(t, "three KIP-848 members sharing six partitions", 30*time.Second, func() bool {
		gs, err := adm.DescribeConsumerGroups(ctx, "kip848")
		if err != nil {
			return false
		}
		g := gs["kip848"]
		if g.Err != nil || len(g.Members) != 3 || countPartitions(g.AssignedPartitions()) != 6 {
			return false
		}
		for _, m := range g.Members {
			if m.MemberEpoch != g.Epoch || len(m.Assignment) == 0 {
				return false
			}
		}
		return true
	})
	stop()
	wg.Wait()
	// Each member commits a part of what it received (an active KIP-848
	// group refuses commits from outside it), so lag differs per partition.
	for i, m := range members {
		var part []*kgo.Record
		for _, r := range got[i] {
			if r.Offset < 10+int64(r.Partition)*4 {
				part = append(part, r)
			}
		}
		if err := m.CommitRecords(ctx, part...); err != nil {
			t.Fatalf("member %d commit: %v", i, err)
		}
	}

	e := newEngine(t, Options{})
	sub := subscription("kip848", addrs, "kip848", "orders")
	sub.GroupType = GroupConsumer
	sub.OffsetResetPolicy = ResetEarliest // kadm counts an uncommitted partition from its start
	still := subscription("still-classic", addrs, "kip848", "orders")
	e.Register(sub)
	mustPoll(t, e, sub)
	s := mustSnapshot(t, e, sub.Consumer)
	assertMatchesKadm(t, s, kadmLag(t, adm, "kip848"))
	if s.Members != 3 || s.GroupType != GroupConsumer || s.AssignedPartitions != 6 || s.Stale || s.TypeMismatch != "" {
		t.Fatalf("snapshot = members %d type %q assigned %d stale %v mismatch %q, want 3 consumer 6 false \"\"",
			s.Members, s.GroupType, s.AssignedPartitions, s.Stale, s.TypeMismatch)
	}
	if s.GroupEpoch <= 0 || s.AssignmentEpoch != s.GroupEpoch || s.Rebalancing || s.RebalancingMembers != 0 {
		t.Fatalf("epochs: group %d assignment %d rebalancing %v (%d members), want a settled group", s.GroupEpoch, s.AssignmentEpoch, s.Rebalancing, s.RebalancingMembers)
	}

	// The same group read as classic: the members and a readable message,
	// not members=0. Offsets are the same for both protocols, so the lag
	// stands and the snapshot is not stale.
	e2 := newEngine(t, Options{})
	e2.Register(still)
	mustPoll(t, e2, still)
	c := mustSnapshot(t, e2, still.Consumer)
	if c.Members != 3 || c.GroupType != GroupConsumer || c.Stale {
		t.Fatalf("classic subscription on a KIP-848 group: members %d type %q stale %v", c.Members, c.GroupType, c.Stale)
	}
	if want := "the broker reports group kip848 as a Consumer group with 3 members, but spec.groupType is Classic"; !strings.Contains(c.TypeMismatch, want) {
		t.Fatalf("mismatch message %q does not contain %q", c.TypeMismatch, want)
	}

	// Read as a share group, nothing of it can be measured: stale, with
	// the message, so that nothing scales down on it.
	e3 := newEngine(t, Options{})
	share := subscription("as-share", addrs, "kip848", "orders")
	share.GroupType = GroupShare
	e3.Register(share)
	mustPoll(t, e3, share)
	sh := mustSnapshot(t, e3, share.Consumer)
	if !sh.Stale || !strings.Contains(sh.Error, "as a Consumer group with 3 members, but spec.groupType is Share") {
		t.Fatalf("share subscription on a KIP-848 group: stale %v error %q", sh.Stale, sh.Error)
	}
}

// TestShareGroupMembersAndLag runs ten share-group members on four
// partitions: every member receives records (more consumers than
// partitions), and the snapshot's lag equals the broker's
// DescribeShareGroupOffsets lag partition by partition.
func TestShareGroupMembersAndLag(t *testing.T) {
	kf := newKafka(t, kfake.SeedTopics(4, "jobs"))
	addrs := kf.ListenAddrs()
	kf.SetGroupConfigs("workers", map[string]string{"share.auto.offset.reset": "earliest"})
	prod := producer(t, addrs)
	adm := kadm.NewClient(newClient(t, addrs))
	ctx := context.Background()
	for p := range int32(4) {
		produce(t, prod, "jobs", p, 500)
	}

	const n = 10
	counts := make([]int, n)
	acked := make(map[int32]bool) // partitions with an acknowledged record
	var mu sync.Mutex
	pollCtx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	var clients []*kgo.Client
	for i := range n {
		cl := newClient(t, addrs,
			kgo.ShareGroup("workers"),
			kgo.ConsumeTopics("jobs"),
			kgo.ShareMaxRecords(5),
			kgo.FetchMaxWait(100*time.Millisecond),
		)
		clients = append(clients, cl)
		wg.Go(func() {
			for pollCtx.Err() == nil {
				fs := cl.PollRecords(pollCtx, 5)
				mu.Lock()
				for _, r := range fs.Records() {
					r.Ack(kgo.AckAccept)
					acked[r.Partition] = true
				}
				counts[i] += len(fs.Records())
				mu.Unlock()
				time.Sleep(20 * time.Millisecond) // slow workers, so all ten get a share
			}
		})
	}
	// A share partition has a start offset to compare only once a record of
	// it was acknowledged, so wait for all four as well.
	waitFor(t, "every one of ten members to receive records, from all four partitions", 30*time.Second, func() bool {
		mu.Lock()
		defer mu.Unlock()
		if len(acked) < 4 {
			return false
		}
		for _, c := range counts {
			if c == 0 {
				return false
			}
		}
		return true
	})
	stop()
	wg.Wait()
	for _, cl := range clients {
		if err := cl.FlushAcks(ctx); err != nil {
			t.Fatalf("flushing acks: %v", err)
		}
	}
	t.Logf("records per member: %v", counts)

	e := newEngine(t, Options{})
	sub := subscription("workers", addrs, "workers", "jobs")
	sub.GroupType = GroupShare
	e.Register(sub)
	mustPoll(t, e, sub)
	s := mustSnapshot(t, e, sub.Consumer)

	offs, err := adm.DescribeShareGroupOffsets(ctx, "workers")
	if err != nil {
		t.Fatalf("DescribeShareGroupOffsets: %v", err)
	}
	want := make(map[tp]int64)
	for tpc, ps := range offs["workers"].Offsets {
		for p, o := range ps {
			if o.Err != nil || o.Lag < 0 {
				t.Fatalf("kadm share offsets %s/%d: lag %d err %v (kfake reports Lag with v1)", tpc, p, o.Lag, o.Err)
			}
			want[tp{tpc, p}] = o.Lag
		}
	}
	assertMatchesKadm(t, s, want)
	if s.TotalLag <= 0 || s.TotalLag >= 2000 {
		t.Fatalf("total lag %d: the members stopped midway, want between 0 and 2000", s.TotalLag)
	}
	if s.Members != n || s.GroupType != GroupShare || s.Stale || s.TypeMismatch != "" {
		t.Fatalf("snapshot = members %d type %q stale %v mismatch %q error %q", s.Members, s.GroupType, s.Stale, s.TypeMismatch, s.Error)
	}
	for _, pl := range s.Partitions {
		if !pl.HasCommit || pl.CommittedOffset < 0 {
			t.Fatalf("%s/%d has no share-partition start offset: %+v", pl.Topic, pl.Partition, pl)
		}
	}
}
