package lag

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/sasl/plain"
)

// backlogAged writes n records to each of the topic's partitions, all
// stamped age before now, and commits group at offset 0 of each.
func backlogAged(t *testing.T, addrs []string, topic string, partitions int32, n int, age time.Duration, group string) {
	t.Helper()
	prod := producer(t, addrs)
	stamp := time.Now().Add(-age)
	for p := range partitions {
		recs := make([]*kgo.Record, n)
		for i := range recs {
			recs[i] = &kgo.Record{Topic: topic, Partition: p, Value: []byte("v"), Timestamp: stamp}
		}
		if err := prod.ProduceSync(context.Background(), recs...).FirstErr(); err != nil {
			t.Fatalf("producing: %v", err)
		}
	}
	offs := make(kadm.Offsets)
	for p := range partitions {
		offs.AddOffset(topic, p, 0, -1)
	}
	if err := kadm.NewClient(newClient(t, addrs)).CommitAllOffsets(context.Background(), group, offs); err != nil {
		t.Fatalf("commit: %v", err)
	}
}

// TestFirstTimeLagFromRecordTimestamps: records written ten minutes before
// lagscale first looks are ten minutes old on the very first snapshot, not
// "as old as lagscale has watched them" (zero).
func TestFirstTimeLagFromRecordTimestamps(t *testing.T) {
	kf := newKafka(t, kfake.SeedTopics(3, "orders"))
	addrs := kf.ListenAddrs()
	backlogAged(t, addrs, "orders", 3, 40, 10*time.Minute, "workers")

	e := newEngine(t, Options{})
	sub := subscription("c", addrs, "workers", "orders")
	e.Register(sub)
	mustPoll(t, e, sub)
	s := mustSnapshot(t, e, sub.Consumer)
	if s.TimestampsUnreadable != "" {
		t.Fatalf("timestamps unreadable on an open broker: %s", s.TimestampsUnreadable)
	}
	for _, pl := range s.Partitions {
		if pl.TimeLagSeconds < 590 || pl.TimeLagSeconds > 660 {
			t.Errorf("partition %d: first time lag %.1fs, want about 600s (the age of the record at the commit)", pl.Partition, pl.TimeLagSeconds)
		}
	}
	t.Logf("first snapshot: time lag %.1fs", s.TimeLagSeconds)
	if s.TimeLagSeconds < 590 || s.TimeLagSeconds > 660 {
		t.Fatalf("first snapshot time lag %.1fs, want about 600s", s.TimeLagSeconds)
	}

	// One Fetch per leader read the timestamps; a second cycle has them.
	byAPI, _ := e.LastCycleRequests(sub.Cluster.ID())
	if byAPI["Fetch"] != 1 {
		t.Errorf("first cycle sent %d Fetch requests, want 1 (one leader)", byAPI["Fetch"])
	}
	mustPoll(t, e, sub)
	if byAPI, _ := e.LastCycleRequests(sub.Cluster.ID()); byAPI["Fetch"] != 0 {
		t.Errorf("second cycle sent %d Fetch requests, want 0: the timestamps are known", byAPI["Fetch"])
	}
	if s := mustSnapshot(t, e, sub.Consumer); s.TimeLagSeconds < 590 {
		t.Errorf("second snapshot time lag %.1fs, want about 600s", s.TimeLagSeconds)
	}
}

// TestTimeLagWithoutReadPermission: where the broker refuses the Fetch (no
// READ permission on the topic), the time lag falls back to the offsets'
// history, and the snapshot says why.
func TestTimeLagWithoutReadPermission(t *testing.T) {
	kf := newKafka(t, kfake.SeedTopics(2, "orders"))
	addrs := kf.ListenAddrs()
	backlogAged(t, addrs, "orders", 2, 20, 10*time.Minute, "workers")

	// The broker answers every Fetch as Kafka does without a READ ACL.
	kf.ControlKey(int16(kmsg.Fetch), func(r kmsg.Request) (kmsg.Response, error, bool) {
		kf.KeepControl()
		req := r.(*kmsg.FetchRequest)
		resp := req.ResponseKind().(*kmsg.FetchResponse)
		for _, rt := range req.Topics {
			st := kmsg.NewFetchResponseTopic()
			st.Topic, st.TopicID = rt.Topic, rt.TopicID
			for _, rp := range rt.Partitions {
				sp := kmsg.NewFetchResponseTopicPartition()
				sp.Partition = rp.Partition
				sp.ErrorCode = kerr.TopicAuthorizationFailed.Code
				st.Partitions = append(st.Partitions, sp)
			}
			resp.Topics = append(resp.Topics, st)
		}
		return resp, nil, true
	})

	e := newEngine(t, Options{})
	sub := subscription("c", addrs, "workers", "orders")
	e.Register(sub)
	mustPoll(t, e, sub)
	s := mustSnapshot(t, e, sub.Consumer)
	if !strings.Contains(s.TimestampsUnreadable, "TOPIC_AUTHORIZATION_FAILED") {
		t.Fatalf("TimestampsUnreadable = %q, want the broker's refusal", s.TimestampsUnreadable)
	}
	if s.TotalLag != 40 {
		t.Fatalf("total lag %d, want 40: a refused Fetch must not touch the offsets", s.TotalLag)
	}
	// Today's estimate: the records are as old as lagscale has seen them.
	if s.TimeLagSeconds > 5 {
		t.Fatalf("time lag %.1fs without timestamps, want the estimate from the offsets' history (about 0 on the first poll)", s.TimeLagSeconds)
	}
	// The refusal is remembered, not asked again every cycle.
	mustPoll(t, e, sub)
	if byAPI, _ := e.LastCycleRequests(sub.Cluster.ID()); byAPI["Fetch"] != 0 {
		t.Errorf("a refused partition was fetched again at once: %d Fetch requests", byAPI["Fetch"])
	}
}

// TestTrackerReadsCommittedTimestamp: the simulator's tracker follows the
// engine's rule. A backlog older than the tracker's first observation is
// as old as its timestamp says, where one is given; without one it is as
// old as the tracker has seen it.
func TestTrackerReadsCommittedTimestamp(t *testing.T) {
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		name  string
		stamp time.Time
		want  float64
	}{
		{name: "timestamp given", stamp: now.Add(-10 * time.Minute), want: 600},
		{name: "no timestamp", want: 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tr := NewTracker(time.Second, ResetLatest)
			offs := []PartitionOffsets{{Topic: "sim", End: 100, Committed: 0, HasCommit: true, CommittedTimestamp: tt.stamp}}
			if got := tr.Observe(now, offs, 1, "Stable").TimeLagSeconds; got != tt.want {
				t.Fatalf("first time lag %.1fs, want %.1fs", got, tt.want)
			}
			if tt.stamp.IsZero() {
				return
			}
			// A second, later observation keeps the record's age.
			offs[0].End = 110
			if got := tr.Observe(now.Add(time.Second), offs, 1, "Stable").TimeLagSeconds; got != tt.want+1 {
				t.Fatalf("second time lag %.1fs, want %.1fs", got, tt.want+1)
			}
		})
	}
}

// TestProducedAtStamped covers how a commit without its own timestamp is
// dated from the stamps and the end-offset history.
func TestProducedAtStamped(t *testing.T) {
	sec := int64(time.Second)
	ends := newSeries(8)
	ends.add(time.Unix(1000, 0), 100) // offsets 0-99 seen by t=1000
	ends.add(time.Unix(1010, 0), 200)
	stamps := []stamp{{from: 0, at: 0, t: 400 * sec}}
	tests := []struct {
		name string
		off  int64
		want int64
	}{
		{name: "covered by a stamp", off: 0, want: 400 * sec},
		{name: "between a stamp and the history's first end", off: 33, want: 600 * sec},
		{name: "inside the history", off: 149, want: 1005 * sec},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := producedAtStamped(ends, stamps, tt.off, 0)
			if !ok || got != tt.want {
				t.Fatalf("producedAtStamped(%d) = %d, %v; want %d", tt.off, got/sec, ok, tt.want/sec)
			}
		})
	}
}

// TestOtherGroupsRefinedInLaterCycles: two groups on one partition. The
// first poll reads the timestamp at the lower commit; the other group's
// commit, older than the history and moving, is read in a later cycle
// rather than left interpolated.
func TestOtherGroupsRefinedInLaterCycles(t *testing.T) {
	kf := newKafka(t, kfake.SeedTopics(1, "orders"))
	addrs := kf.ListenAddrs()
	prod := producer(t, addrs)
	now := time.Now()
	var recs []*kgo.Record
	for i := range 30 {
		age := 10 * time.Minute // offsets 0-19
		if i >= 20 {
			age = 5 * time.Minute // offsets 20-29
		}
		recs = append(recs, &kgo.Record{Topic: "orders", Value: []byte("v"), Timestamp: now.Add(-age)})
	}
	if err := prod.ProduceSync(context.Background(), recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	adm := kadm.NewClient(newClient(t, addrs))
	commit := func(group string, at int64) {
		t.Helper()
		offs := make(kadm.Offsets)
		offs.AddOffset("orders", 0, at, -1)
		if err := adm.CommitAllOffsets(context.Background(), group, offs); err != nil {
			t.Fatal(err)
		}
	}
	commit("slow", 0)
	commit("fast", 20)

	e := newEngine(t, Options{})
	slow, fast := subscription("slow", addrs, "slow", "orders"), subscription("fast", addrs, "fast", "orders")
	e.Register(slow)
	e.Register(fast)
	mustPoll(t, e, slow)
	if s := mustSnapshot(t, e, slow.Consumer); s.TimeLagSeconds < 590 || s.TimeLagSeconds > 660 {
		t.Fatalf("slow group: first time lag %.1fs, want about 600s", s.TimeLagSeconds)
	}
	// The fast group consumes one record: its commit moves, so no marker
	// read is due for it, but it still lies before the history.
	commit("fast", 21)
	mustPoll(t, e, slow)
	if s := mustSnapshot(t, e, fast.Consumer); s.TimeLagSeconds < 290 || s.TimeLagSeconds > 360 {
		t.Fatalf("fast group after a second cycle: time lag %.1fs, want about 300s (the record at its commit)", s.TimeLagSeconds)
	}
}

// TestTimeLagWithoutReadACL is the fallback against the broker's own ACL
// check: a user allowed to describe the topic and the group (all that lag
// needs) but not to read the topic gets TOPIC_AUTHORIZATION_FAILED on the
// Fetch; the lag stays exact and the time lag falls back, saying why.
func TestTimeLagWithoutReadACL(t *testing.T) {
	describe := func(res kmsg.ACLResourceType, name string) kfake.ACL {
		return kfake.ACL{Resource: res, Name: name, Pattern: kmsg.ACLResourcePatternTypeLiteral, Operation: kmsg.ACLOperationDescribe, Allow: true}
	}
	kf := newKafka(t, kfake.SeedTopics(2, "orders"), kfake.EnableSASL(), kfake.EnableACLs(),
		kfake.Superuser(MechanismPlain, "admin", "admin-secret"),
		kfake.User(MechanismPlain, "lagscale", "lagscale-secret",
			describe(kmsg.ACLResourceTypeTopic, "orders"), describe(kmsg.ACLResourceTypeGroup, "workers")))
	addrs := kf.ListenAddrs()
	admin := kgo.SASL(plain.Auth{User: "admin", Pass: "admin-secret"}.AsMechanism())
	prod := newClient(t, addrs, admin, kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.ProducerLinger(0))
	old := time.Now().Add(-10 * time.Minute)
	for p := range int32(2) {
		recs := make([]*kgo.Record, 20)
		for i := range recs {
			recs[i] = &kgo.Record{Topic: "orders", Partition: p, Value: []byte("v"), Timestamp: old}
		}
		if err := prod.ProduceSync(context.Background(), recs...).FirstErr(); err != nil {
			t.Fatalf("producing: %v", err)
		}
	}
	offs := make(kadm.Offsets)
	offs.AddOffset("orders", 0, 0, -1)
	offs.AddOffset("orders", 1, 0, -1)
	if err := kadm.NewClient(newClient(t, addrs, admin)).CommitAllOffsets(context.Background(), "workers", offs); err != nil {
		t.Fatalf("commit: %v", err)
	}

	e := newEngine(t, Options{})
	sub := subscription("c", addrs, "workers", "orders")
	sub.Cluster.SASL = &SASLConfig{Mechanism: MechanismPlain, Username: "lagscale", Password: "lagscale-secret"}
	e.Register(sub)
	mustPoll(t, e, sub)
	s := mustSnapshot(t, e, sub.Consumer)
	if s.Stale || s.TotalLag != 40 {
		t.Fatalf("snapshot %+v: want fresh, lag 40 (describe is all lag needs)", s)
	}
	if !strings.Contains(s.TimestampsUnreadable, "TOPIC_AUTHORIZATION_FAILED") || strings.Contains(s.TimestampsUnreadable, "lagscale-secret") {
		t.Fatalf("TimestampsUnreadable = %q, want the broker's refusal (and no password)", s.TimestampsUnreadable)
	}
	if s.TimeLagSeconds > 5 {
		t.Fatalf("time lag %.1fs without READ, want the estimate from the offsets' history (about 0 on the first poll)", s.TimeLagSeconds)
	}
}
