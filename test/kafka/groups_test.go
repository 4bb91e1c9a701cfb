//go:build kafka

package kafka

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/lagscale/lagscale/internal/lag"
	"github.com/lagscale/lagscale/internal/testkit"
)

// newGroupKinds are the brokers with KIP-848 consumer groups and KIP-932
// share groups both on: kfake and Apache Kafka 4.x (3.9 had neither turned
// on by default).
var newGroupKinds = []string{"kfake", testkit.KafkaVersion}

// pollAll runs every client's poll loop, handing each fetch to got, until
// until reports true (checked every 200 ms, for at most 60 s); then it stops
// the loops and waits for them.
func pollAll(t *testing.T, what string, clients []*kgo.Client, got func(i int, rs []*kgo.Record), until func() bool) {
	t.Helper()
	ctx, stop := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for i, cl := range clients {
		wg.Go(func() {
			for ctx.Err() == nil {
				got(i, cl.PollRecords(ctx, 5).Records())
			}
		})
	}
	defer wg.Wait()
	defer stop()
	testkit.WaitFor(t, 60*time.Second, what, until)
}

// TestLagConsumerGroup reads a KIP-848 group of three, each member having
// committed part of what it got: the engine describes it with
// ConsumerGroupDescribe (members, assignment, settled epochs) and its lag
// equals kadm's offsets on every partition.
func TestLagConsumerGroup(t *testing.T) {
	for _, kind := range newGroupKinds {
		t.Run(kind, func(t *testing.T) {
			b := startBroker(t, kind)
			const topic, group = "kip848", "kip848-g"
			testkit.CreateTopics(t, b, 6, topic)
			produce(t, b, topic, 6, 40)
			var members []*kgo.Client
			for range 3 {
				members = append(members, testkit.Client(t, b, kgo.ConsumerGroup(group), kgo.ConsumeTopics(topic),
					kgo.ServerSideBalancer(), kgo.DisableAutoCommit(), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
					kgo.FetchMaxWait(100*time.Millisecond)))
			}
			var mu sync.Mutex
			got := make([][]*kgo.Record, len(members))
			pollAll(t, "three KIP-848 members sharing six partitions at the group's epoch", members,
				func(i int, rs []*kgo.Record) { mu.Lock(); got[i] = append(got[i], rs...); mu.Unlock() },
				func() bool {
					gs, err := b.Admin().DescribeConsumerGroups(context.Background(), group)
					if err != nil || gs[group].Err != nil || len(gs[group].Members) != 3 {
						return false
					}
					g := gs[group]
					n := 0
					for _, m := range g.Members {
						if m.MemberEpoch != g.Epoch || len(m.Assignment) == 0 {
							return false
						}
						for _, ps := range m.Assignment {
							n += len(ps)
						}
					}
					return n == 6
				})
			// Each member commits a part of what it received (an active
			// KIP-848 group refuses commits from outside it), so lag differs
			// per partition.
			for i, m := range members {
				var part []*kgo.Record
				for _, r := range got[i] {
					if r.Offset < 10+int64(r.Partition)*4 {
						part = append(part, r)
					}
				}
				if err := m.CommitRecords(context.Background(), part...); err != nil {
					t.Fatalf("%s: member %d commit: %v", kind, i, err)
				}
			}
			s := engineLagOf(t, b, lag.GroupConsumer, group, lag.ResetEarliest, topic)
			if s.GroupType != lag.GroupConsumer || s.Members != 3 || s.AssignedPartitions != 6 || s.TypeMismatch != "" {
				t.Fatalf("%s: snapshot type %q members %d assigned %d mismatch %q, want consumer, 3, 6 and none",
					kind, s.GroupType, s.Members, s.AssignedPartitions, s.TypeMismatch)
			}
			if s.GroupEpoch <= 0 || s.AssignmentEpoch != s.GroupEpoch || s.Rebalancing {
				t.Fatalf("%s: epochs group %d assignment %d rebalancing %v, want a settled group", kind, s.GroupEpoch, s.AssignmentEpoch, s.Rebalancing)
			}
			if s.TotalLag <= 0 || s.TotalLag >= 240 {
				t.Fatalf("%s: total lag %d, want between 0 and 240", kind, s.TotalLag)
			}
			sameLag(t, b, "kadm offsets", s, reference(t, b.Admin(), group, lag.ResetEarliest, false, topic))

			// The same group under a Classic spec: the broker's type and
			// members, with the mismatch said, and the lag kept.
			c := engineLagOf(t, b, lag.GroupClassic, group, lag.ResetEarliest, topic)
			if c.GroupType != lag.GroupConsumer || c.Members != 3 || c.TypeMismatch == "" {
				t.Fatalf("%s: classic spec on a KIP-848 group: type %q members %d mismatch %q", kind, c.GroupType, c.Members, c.TypeMismatch)
			}
			sameLag(t, b, "kadm offsets (classic spec)", c, reference(t, b.Admin(), group, lag.ResetEarliest, false, topic))
		})
	}
}

// TestLagShareGroup runs six share-group members on three partitions,
// more members than partitions, acknowledging what they get: every member
// receives records, and the engine's lag equals the broker's
// DescribeShareGroupOffsets partition by partition: its Lag where it
// reports one, else the end offset less the share-partition start offset.
func TestLagShareGroup(t *testing.T) {
	for _, kind := range newGroupKinds {
		t.Run(kind, func(t *testing.T) {
			b := startBroker(t, kind)
			const topic, group, n = "shared", "shared-g", 6
			testkit.CreateTopics(t, b, 3, topic)
			var members []*kgo.Client
			for range n {
				members = append(members, testkit.Client(t, b, kgo.ShareGroup(group), kgo.ConsumeTopics(topic),
					kgo.ShareMaxRecords(5), kgo.FetchMaxWait(100*time.Millisecond)))
			}
			// share.auto.offset.reset is latest on both brokers: a share
			// partition starts at the end it has when first fetched, so the
			// members join before anything is produced, and production runs
			// until every member and every partition has had a record.
			var mu sync.Mutex
			counts := make([]int, n)
			acked := map[int32]bool{}
			produced := 0
			pollAll(t, "every one of six share members to receive records, from all three partitions", members,
				func(i int, rs []*kgo.Record) {
					mu.Lock()
					defer mu.Unlock()
					for _, r := range rs {
						r.Ack(kgo.AckAccept)
						acked[r.Partition] = true
					}
					counts[i] += len(rs)
					time.Sleep(20 * time.Millisecond) // slow members, so that all six get a share
				},
				func() bool {
					produce(t, b, topic, 3, 20)
					produced += 60
					mu.Lock()
					defer mu.Unlock()
					if len(acked) < 3 {
						return false
					}
					for _, c := range counts {
						if c == 0 {
							return false
						}
					}
					return true
				})
			for _, m := range members {
				if err := m.FlushAcks(context.Background()); err != nil {
					t.Fatalf("%s: flushing acknowledgements: %v", kind, err)
				}
			}
			produce(t, b, topic, 3, 100) // a backlog nobody has fetched
			produced += 300
			t.Logf("%s: records per member %v of %d produced", kind, counts, produced)

			s := engineLagOf(t, b, lag.GroupShare, group, lag.ResetLatest, topic)
			if s.GroupType != lag.GroupShare || s.Members != n || s.TypeMismatch != "" {
				t.Fatalf("%s: snapshot type %q members %d mismatch %q, want share, %d and none", kind, s.GroupType, s.Members, s.TypeMismatch, n)
			}
			if s.TotalLag < 300 || s.TotalLag > int64(produced) {
				t.Fatalf("%s: total lag %d, want at least the 300 unfetched records and at most the %d produced", kind, s.TotalLag, produced)
			}
			sameLag(t, b, "DescribeShareGroupOffsets", s, shareReference(t, b, group, topic))
		})
	}
}

// shareReference is a share group's lag as the broker's own
// DescribeShareGroupOffsets gives it, partition by partition.
func shareReference(t *testing.T, b testkit.Broker, group, topic string) map[tp]int64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	offs, err := b.Admin().DescribeShareGroupOffsets(ctx, group)
	if err != nil {
		t.Fatalf("%s: DescribeShareGroupOffsets: %v", b.Kind(), err)
	}
	if err := offs[group].Err; err != nil {
		t.Fatalf("%s: DescribeShareGroupOffsets of %s: %v", b.Kind(), group, err)
	}
	ends, err := b.Admin().ListEndOffsets(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	out := map[tp]int64{}
	for tpc, ps := range offs[group].Offsets {
		for p, o := range ps {
			if o.Err != nil || o.StartOffset < 0 {
				t.Fatalf("%s: %s/%d share offsets: start %d err %v", b.Kind(), tpc, p, o.StartOffset, o.Err)
			}
			l := o.Lag
			if l < 0 {
				end, _ := ends.Lookup(tpc, p)
				l = end.Offset - o.StartOffset
			}
			out[tp{tpc, p}] = l
		}
	}
	return out
}
