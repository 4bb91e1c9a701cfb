package lag

import (
	"context"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
)

// freePort returns a TCP port that was free a moment ago, so a broker can be
// restarted on the same address.
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("finding a free port: %v", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// TestBrokerDownAndBack stops the broker under a running engine and starts
// it again on the same port and data directory: the snapshot turns stale
// and unreachable with its last data kept, then recovers by itself.
func TestBrokerDownAndBack(t *testing.T) {
	port := freePort(t)
	dir := t.TempDir()
	opts := []kfake.Opt{kfake.NumBrokers(1), kfake.Ports(port), kfake.DataDir(dir), kfake.SeedTopics(2, "jobs")}
	kf, err := kfake.NewCluster(opts...)
	if err != nil {
		t.Fatalf("starting kfake: %v", err)
	}
	addrs := kf.ListenAddrs()
	prod := producer(t, addrs)
	produce(t, prod, "jobs", 0, 30)
	produce(t, prod, "jobs", 1, 12)
	adm := kadm.NewClient(newClient(t, addrs))
	offs := make(kadm.Offsets)
	offs.AddOffset("jobs", 0, 10, -1)
	offs.AddOffset("jobs", 1, 10, -1)
	if err := adm.CommitAllOffsets(context.Background(), "workers", offs); err != nil {
		t.Fatalf("commit: %v", err)
	}
	prod.Close()

	var (
		mu      sync.Mutex
		changes int
	)
	e := newEngine(t, Options{
		RequestTimeout: time.Second,
		MaxBackoff:     400 * time.Millisecond,
		OnChange: func(ConsumerKey) {
			mu.Lock()
			changes++
			mu.Unlock()
		},
	})
	sub := subscription("workers", addrs, "workers", "jobs")
	sub.PollInterval = 100 * time.Millisecond
	e.Register(sub)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.Start(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Start: %v", err)
		}
	}()

	snap := func() Snapshot { s, _ := e.Snapshot(sub.Consumer); return s }
	waitFor(t, "first snapshot", 10*time.Second, func() bool { return snap().Reachable && snap().TotalLag == 22 })
	good := snap()

	kf.Close()
	waitFor(t, "snapshot to turn stale", 15*time.Second, func() bool { return snap().Stale })
	down := snap()
	if down.Reachable || down.Error == "" || down.TotalLag != good.TotalLag || !down.Time.Equal(good.Time) {
		t.Fatalf("while the broker is down = %+v, want unreachable with the last good data from %s", down, good.Time)
	}
	if st, _ := e.ClusterStatus(sub.Cluster.ID()); st.Reachable || st.Error == "" {
		t.Fatalf("cluster status while down = %+v", st)
	}
	if strings.Contains(down.Error, "\n") {
		t.Fatalf("error is not one readable line: %q", down.Error)
	}
	t.Logf("down: %s", down.Error)

	// Several cycles fail in a row but the consumer is notified once for the
	// transition, not on every failed cycle.
	mu.Lock()
	changesDown := changes
	mu.Unlock()
	time.Sleep(time.Second)
	mu.Lock()
	if changes != changesDown {
		t.Errorf("OnChange called %d more times while nothing changed", changes-changesDown)
	}
	mu.Unlock()

	kf2, err := kfake.NewCluster(opts...)
	if err != nil {
		t.Fatalf("restarting kfake on port %d: %v", port, err)
	}
	defer kf2.Close()
	waitFor(t, "recovery", 20*time.Second, func() bool { s := snap(); return s.Reachable && !s.Stale })
	if s := snap(); s.TotalLag != 22 || s.Error != "" || !s.Time.After(good.Time) {
		t.Fatalf("after recovery = %+v, want fresh data with lag 22", s)
	}
}

// TestPartitionErrorDegradesOnlyThatPartition fails ListOffsets for one
// partition with an error code in the answer and checks that only that
// partition carries it, and that the code is counted.
func TestPartitionErrorDegradesOnlyThatPartition(t *testing.T) {
	kf := newKafka(t, kfake.SeedTopics(3, "p"))
	addrs := kf.ListenAddrs()
	prod := producer(t, addrs)
	for p := range int32(3) {
		produce(t, prod, "p", p, 10)
	}
	reg := prometheus.NewRegistry()
	e := newEngine(t, Options{RequestTimeout: 2 * time.Second, Registerer: reg})
	sub := subscription("p", addrs, "g", "p")
	sub.OffsetResetPolicy = ResetEarliest
	e.Register(sub)
	mustPoll(t, e, sub)

	h := kf.Fault(kfake.Fault{Keys: []kmsgKey{listOffsetsKey}, Topic: "p", Partitions: []int32{1}, Count: -1})
	defer h.Remove()
	produce(t, prod, "p", 0, 5)
	produce(t, prod, "p", 1, 5)
	mustPoll(t, e, sub)
	s := mustSnapshot(t, e, sub.Consumer)
	if !s.Reachable || s.Stale {
		t.Fatalf("one bad partition made the snapshot unreachable: %+v", s)
	}
	for _, pl := range s.Partitions {
		switch pl.Partition {
		case 1:
			if pl.Error == "" || pl.EndOffset != 10 {
				t.Fatalf("faulted partition = %+v, want an error and the last known end offset 10", pl)
			}
		default:
			if pl.Error != "" {
				t.Fatalf("partition %d carries an error: %+v", pl.Partition, pl)
			}
		}
	}
	if p0 := partitionOf(t, s, "p", 0); p0.EndOffset != 15 {
		t.Fatalf("healthy partition end offset = %d, want 15", p0.EndOffset)
	}
	// Both ListOffsets of the faulted cycle (log start and end) answered
	// partition 1 with UNKNOWN_SERVER_ERROR; nothing else carried a code.
	counted := map[string]float64{}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "lagscale_kafka_response_errors_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			lbl := map[string]string{}
			for _, l := range m.GetLabel() {
				lbl[l.GetName()] = l.GetValue()
			}
			counted[lbl["api"]+" "+lbl["error"]] += m.GetCounter().GetValue()
		}
	}
	if len(counted) != 1 || counted["ListOffsets UNKNOWN_SERVER_ERROR"] < 2 {
		t.Fatalf("response errors counted %v, want only ListOffsets UNKNOWN_SERVER_ERROR, at least 2", counted)
	}
}

// TestPollsStartOneIntervalApart: a cycle and the decisions on its
// snapshots that take part of the interval do not push the next poll
// back, one that takes longer starts the next at once, and after a failure
// the backoff counts from the failed cycle's end.
func TestPollsStartOneIntervalApart(t *testing.T) {
	e := &Engine{opts: Options{MaxBackoff: time.Minute}}
	c := &cluster{e: e, subs: map[ConsumerKey]Subscription{{Namespace: "n", Name: "c"}: {PollInterval: 5 * time.Second}}}
	for _, tc := range []struct {
		took     time.Duration
		failures int
		want     time.Duration
	}{
		{took: time.Second, want: 4 * time.Second},
		{took: 7 * time.Second, want: 0},
		{took: 7 * time.Second, failures: 1, want: 10 * time.Second},
		{took: time.Second, failures: 5, want: time.Minute},
	} {
		c.failures = tc.failures
		if got := c.nextDelay(tc.took); got != tc.want {
			t.Errorf("cycle of %s after %d failures: next in %s, want %s", tc.took, tc.failures, got, tc.want)
		}
	}
}

// TestBacklogsAreToldFirst: among the consumers whose snapshot changed,
// the callbacks hear first of those whose lag grew most, whatever their
// names.
func TestBacklogsAreToldFirst(t *testing.T) {
	keys := []ConsumerKey{{Namespace: "a", Name: "steady"}, {Namespace: "a", Name: "draining"}, {Namespace: "z", Name: "backlog"}, {Namespace: "b", Name: "new"}}
	e := &Engine{snaps: map[ConsumerKey]Snapshot{
		keys[0]: {TotalLag: 10}, keys[1]: {TotalLag: 500}, keys[2]: {TotalLag: 10},
	}}
	c := &cluster{e: e, subs: map[ConsumerKey]Subscription{}}
	for _, k := range keys {
		c.subs[k] = Subscription{Consumer: k}
	}
	snaps := map[ConsumerKey]Snapshot{
		keys[0]: {TotalLag: 12}, keys[1]: {TotalLag: 100}, keys[2]: {TotalLag: 8010}, keys[3]: {TotalLag: 40},
	}
	changed, _ := e.setSnapshots(c, snaps, c.subs)
	want := []ConsumerKey{keys[2], keys[3], keys[0], keys[1]}
	if !slices.Equal(changed, want) {
		t.Fatalf("told in the order %v, want %v", changed, want)
	}
}
