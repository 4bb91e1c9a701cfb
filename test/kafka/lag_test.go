//go:build kafka

package kafka

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/lagscale/lagscale/internal/lag"
	"github.com/lagscale/lagscale/internal/testkit"
)

type tp struct {
	topic string
	part  int32
}

// engineLag polls the lag engine once (after a warm-up cycle) for group on
// topics and returns its snapshot.
func engineLag(t *testing.T, b testkit.Broker, group, policy string, topics ...string) lag.Snapshot {
	t.Helper()
	return engineLagOf(t, b, lag.GroupClassic, group, policy, topics...)
}

// engineLagOf is engineLag for a group of groupType.
func engineLagOf(t *testing.T, b testkit.Broker, groupType, group, policy string, topics ...string) lag.Snapshot {
	t.Helper()
	e := lag.NewEngine(lag.Options{})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = e.Start(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	sub := lag.Subscription{
		Consumer:          lag.ConsumerKey{Namespace: "compat", Name: group},
		Cluster:           lag.ClusterConfig{BootstrapServers: b.Bootstrap()},
		Group:             group,
		GroupType:         groupType,
		Topics:            topics,
		OffsetResetPolicy: policy,
		PollInterval:      time.Hour, // only the explicit polls below
	}
	e.Register(sub)
	// Apache Kafka answers the first FindCoordinator of a fresh cluster with
	// COORDINATOR_NOT_AVAILABLE while it creates __consumer_offsets (kfake
	// has a coordinator at once); the engine then marks the snapshot stale
	// and retries on its next cycle, as it does here.
	var s lag.Snapshot
	testkit.WaitFor(t, 30*time.Second, b.Kind()+" lag snapshot of "+group, func() bool {
		if err := e.Poll(ctx, sub.Cluster.ID()); err != nil {
			t.Fatalf("%s: lag poll: %v", b.Kind(), err)
		}
		var ok bool
		s, ok = e.Snapshot(sub.Consumer)
		if ok && s.Stale {
			t.Logf("%s: stale snapshot: %s", b.Kind(), s.Error)
		}
		return ok && !s.Stale && s.Error == "" && s.Polls >= 2
	})
	return s
}

// reference is lag computed from kadm's own offset listings, partition by
// partition: end - commit with a commit, and by the reset policy without
// one (earliest: end - log start; latest: nothing). readCommitted takes the
// end from ListCommittedOffsets (the last stable offset) instead of
// ListEndOffsets (the high watermark).
func reference(t *testing.T, adm *kadm.Client, group, policy string, readCommitted bool, topics ...string) map[tp]int64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	starts, err := adm.ListStartOffsets(ctx, topics...)
	if err != nil {
		t.Fatal(err)
	}
	list := adm.ListEndOffsets
	if readCommitted {
		list = adm.ListCommittedOffsets
	}
	ends, err := list(ctx, topics...)
	if err != nil {
		t.Fatal(err)
	}
	commits, err := adm.FetchOffsets(ctx, group)
	if err != nil && !errors.Is(err, kerr.GroupIDNotFound) {
		t.Fatal(err)
	}
	out := map[tp]int64{}
	ends.Each(func(o kadm.ListedOffset) {
		if o.Err != nil {
			t.Fatalf("end offset %s/%d: %v", o.Topic, o.Partition, o.Err)
		}
		var l int64
		c, ok := commits.Lookup(o.Topic, o.Partition)
		switch {
		case ok && c.Err == nil && c.At >= 0:
			l = o.Offset - c.At
		case policy == lag.ResetEarliest:
			s, _ := starts.Lookup(o.Topic, o.Partition)
			l = o.Offset - s.Offset
		}
		out[tp{o.Topic, o.Partition}] = max(l, 0)
	})
	return out
}

// kadmLag is kadm's Lag for a group that exists, partition by partition.
func kadmLag(t *testing.T, adm *kadm.Client, group string) map[tp]int64 {
	t.Helper()
	lags, err := adm.Lag(context.Background(), group)
	if err != nil {
		t.Fatal(err)
	}
	gl := lags[group]
	if err := gl.Error(); err != nil {
		t.Fatalf("kadm lag of %s: %v", group, err)
	}
	out := map[tp]int64{}
	for _, ps := range gl.Lag {
		for p, ml := range ps {
			if ml.Err != nil {
				t.Fatalf("kadm lag %s/%d: %v", ml.Topic, p, ml.Err)
			}
			out[tp{ml.Topic, p}] = ml.Lag
		}
	}
	return out
}

// sameLag fails unless the engine's snapshot has exactly the partitions of
// want with the same lag on each.
func sameLag(t *testing.T, b testkit.Broker, what string, s lag.Snapshot, want map[tp]int64) {
	t.Helper()
	if len(s.Partitions) != len(want) {
		t.Fatalf("%s %s: engine has %d partitions, %s has %d: %+v vs %v", b.Kind(), what, len(s.Partitions), what, len(want), s.Partitions, want)
	}
	var total int64
	for _, p := range s.Partitions {
		w, ok := want[tp{p.Topic, p.Partition}]
		if !ok || p.Lag != w {
			t.Fatalf("%s: %s/%d engine lag %d (%+v), %s says %d", b.Kind(), p.Topic, p.Partition, p.Lag, p, what, w)
		}
		total += w
	}
	if s.TotalLag != total {
		t.Fatalf("%s: engine total lag %d, %s %d", b.Kind(), s.TotalLag, what, total)
	}
}

// produce writes n records to each of partitions 0..parts-1 of topic.
func produce(t *testing.T, b testkit.Broker, topic string, parts int32, n int) {
	t.Helper()
	cl := testkit.Client(t, b, kgo.RecordPartitioner(kgo.ManualPartitioner()))
	var rs []*kgo.Record
	for p := range parts {
		for i := range n {
			rs = append(rs, &kgo.Record{Topic: topic, Partition: p, Value: fmt.Appendf(nil, "%d-%d", p, i)})
		}
	}
	if err := cl.ProduceSync(context.Background(), rs...).FirstErr(); err != nil {
		t.Fatalf("%s: producing: %v", b.Kind(), err)
	}
}

func TestLagMidConsumption(t *testing.T) {
	forEachBroker(t, func(t *testing.T, b testkit.Broker) {
		testkit.CreateTopics(t, b, 3, "mid")
		produce(t, b, "mid", 3, 40)
		// A live member of the group consumes part of the topic and
		// commits what it got, then stays in the group.
		cons := testkit.Client(t, b, kgo.ConsumerGroup("mid-g"), kgo.ConsumeTopics("mid"), kgo.DisableAutoCommit(),
			kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchMaxPartitionBytes(300), kgo.FetchMaxBytes(300))
		got := 0
		testkit.WaitFor(t, 30*time.Second, "the consumer to read some records", func() bool {
			ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
			defer cancel()
			got += cons.PollRecords(ctx, 25).NumRecords()
			return got >= 25
		})
		if err := cons.CommitUncommittedOffsets(context.Background()); err != nil {
			t.Fatal(err)
		}
		produce(t, b, "mid", 3, 10)
		// kadm counts a partition without a commit from its start, as the
		// earliest policy does.
		s := engineLag(t, b, "mid-g", lag.ResetEarliest, "mid")
		if s.TotalLag <= 0 || s.TotalLag >= 150 || s.Members != 1 {
			t.Fatalf("%s: mid-consumption total lag %d with %d members, want between 0 and 150 with 1", b.Kind(), s.TotalLag, s.Members)
		}
		sameLag(t, b, "kadm.Lag", s, kadmLag(t, b.Admin(), "mid-g"))
		sameLag(t, b, "kadm offsets", s, reference(t, b.Admin(), "mid-g", lag.ResetEarliest, false, "mid"))
	})
}

func TestLagNeverCommitted(t *testing.T) {
	forEachBroker(t, func(t *testing.T, b testkit.Broker) {
		testkit.CreateTopics(t, b, 3, "never")
		produce(t, b, "never", 3, 20)
		deleteBefore(t, b, "never", 0, 5) // log start 5 on partition 0
		for _, policy := range []string{lag.ResetEarliest, lag.ResetLatest} {
			s := engineLag(t, b, "never-g-"+policy, policy, "never")
			want := map[tp]int64{{"never", 0}: 0, {"never", 1}: 0, {"never", 2}: 0}
			if policy == lag.ResetEarliest {
				want = map[tp]int64{{"never", 0}: 15, {"never", 1}: 20, {"never", 2}: 20}
			}
			sameLag(t, b, "the produced counts ("+policy+")", s, want)
			sameLag(t, b, "kadm offsets ("+policy+")", s, reference(t, b.Admin(), "never-g-"+policy, policy, false, "never"))
		}
	})
}

// deleteBefore deletes the records of topic/partition below offset.
func deleteBefore(t *testing.T, b testkit.Broker, topic string, partition int32, offset int64) {
	t.Helper()
	offs := kadm.Offsets{}
	offs.AddOffset(topic, partition, offset, -1)
	resps, err := b.Admin().DeleteRecords(context.Background(), offs)
	if err != nil {
		t.Fatalf("%s: DeleteRecords: %v", b.Kind(), err)
	}
	if err := resps.Error(); err != nil {
		t.Fatalf("%s: DeleteRecords: %v", b.Kind(), err)
	}
}

func TestLagAfterDeleteRecords(t *testing.T) {
	forEachBroker(t, func(t *testing.T, b testkit.Broker) {
		testkit.CreateTopics(t, b, 2, "del")
		produce(t, b, "del", 2, 100)
		offs := kadm.Offsets{}
		offs.AddOffset("del", 0, 20, -1)
		offs.AddOffset("del", 1, 70, -1)
		if err := b.Admin().CommitAllOffsets(context.Background(), "del-g", offs); err != nil {
			t.Fatal(err)
		}
		deleteBefore(t, b, "del", 0, 50) // log start beyond the commit of partition 0
		deleteBefore(t, b, "del", 1, 50) // and below the one of partition 1
		s := engineLag(t, b, "del-g", lag.ResetEarliest, "del")
		for _, p := range s.Partitions {
			if p.LogStartOffset != 50 {
				t.Fatalf("%s: del/%d log start %d, want 50", b.Kind(), p.Partition, p.LogStartOffset)
			}
		}
		// Kafka's own tools count a commit below the log start as end -
		// commit; so do kadm and the engine.
		sameLag(t, b, "the commits", s, map[tp]int64{{"del", 0}: 80, {"del", 1}: 30})
		sameLag(t, b, "kadm.Lag", s, kadmLag(t, b.Admin(), "del-g"))
		sameLag(t, b, "kadm offsets", s, reference(t, b.Admin(), "del-g", lag.ResetEarliest, false, "del"))
	})
}

// TestRequestsPerCycle100Groups checks the engine's documented bound on a
// single broker: one Metadata, ListOffsets for start and end per leader,
// per coordinator OffsetFetch, DescribeShareGroupOffsets and at most one
// describe per group type, and at most one FindCoordinator batch, whatever
// the number of groups.
func TestRequestsPerCycle100Groups(t *testing.T) {
	forEachBroker(t, func(t *testing.T, b testkit.Broker) {
		testkit.CreateTopics(t, b, 6, "many")
		produce(t, b, "many", 6, 5)
		e := lag.NewEngine(lag.Options{})
		var sub lag.Subscription
		for i := range 100 {
			g := "many-g-" + strconv.Itoa(i)
			offs := kadm.Offsets{}
			offs.AddOffset("many", int32(i%6), 1, -1)
			if err := b.Admin().CommitAllOffsets(context.Background(), g, offs); err != nil {
				t.Fatal(err)
			}
			sub = lag.Subscription{
				Consumer: lag.ConsumerKey{Namespace: "compat", Name: g},
				Cluster:  lag.ClusterConfig{BootstrapServers: b.Bootstrap()},
				Group:    g, Topics: []string{"many"}, PollInterval: time.Millisecond,
			}
			e.Register(sub)
		}
		ctx := context.Background()
		fresh := func() bool {
			for i := range 100 {
				if s, ok := e.Snapshot(lag.ConsumerKey{Namespace: "compat", Name: "many-g-" + strconv.Itoa(i)}); !ok || s.Stale {
					return false
				}
			}
			return true
		}
		// Warm up until every group's coordinator answered (a fresh Apache
		// Kafka has none at first and the client refreshes its metadata
		// after that error), then measure a warm cycle.
		testkit.WaitFor(t, 60*time.Second, "every group's offsets read", func() bool {
			if err := e.Poll(ctx, sub.Cluster.ID()); err != nil {
				t.Fatal(err)
			}
			return fresh()
		})
		for range 3 {
			if err := e.Poll(ctx, sub.Cluster.ID()); err != nil {
				t.Fatal(err)
			}
		}
		byAPI, total := e.LastCycleRequests(sub.Cluster.ID())
		t.Logf("%s: 100 groups, %d requests per cycle %v", b.Kind(), total, byAPI)
		// Per coordinator: OffsetFetch, DescribeShareGroupOffsets (only
		// with share groups) and one describe per group type (a group
		// without members is asked under the other two types too).
		// Apache Kafka 3.9 has no KIP-848 describe for these groups; the
		// client sometimes refreshes its metadata after that answer, so one
		// extra Metadata is allowed there and nowhere else.
		const brokers = 1
		metadata := 1
		if b.Kind() == "apache-3.9.1" {
			metadata = 2
		}
		if bound := metadata + 2*brokers + 5*brokers; total > bound || byAPI["Metadata"] > metadata {
			t.Fatalf("%s: %d requests per cycle %v, bound %d with at most %d Metadata", b.Kind(), total, byAPI, bound, metadata)
		}
		for _, api := range []string{"OffsetFetch", "DescribeGroups", "ConsumerGroupDescribe", "ShareGroupDescribe", "DescribeShareGroupOffsets"} {
			if byAPI[api] > brokers {
				t.Fatalf("%s: %d %s requests per cycle for 100 groups on %d coordinator: not batched", b.Kind(), byAPI[api], api, brokers)
			}
		}
		for i := range 100 {
			s, _ := e.Snapshot(lag.ConsumerKey{Namespace: "compat", Name: "many-g-" + strconv.Itoa(i)})
			if s.Stale || s.TotalLag != 4 {
				t.Fatalf("%s: group %d: %+v, want lag 4 on its partition", b.Kind(), i, s)
			}
		}
	})
}
