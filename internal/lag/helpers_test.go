package lag

import (
	"context"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr/testr"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// newKafka starts an in-process kfake broker, closed at the end of the test.
func newKafka(t testing.TB, opts ...kfake.Opt) *kfake.Cluster {
	t.Helper()
	c, err := kfake.NewCluster(append([]kfake.Opt{kfake.NumBrokers(1)}, opts...)...)
	if err != nil {
		t.Fatalf("starting kfake: %v", err)
	}
	t.Cleanup(c.Close)
	return c
}

// newClient returns a franz-go client on the broker, closed at the end.
func newClient(t testing.TB, addrs []string, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(addrs...)}, opts...)...)
	if err != nil {
		t.Fatalf("creating client: %v", err)
	}
	t.Cleanup(cl.Close)
	return cl
}

// produce writes n records to one partition and returns the offset of the
// last one.
func produce(t testing.TB, cl *kgo.Client, topic string, partition int32, n int) int64 {
	t.Helper()
	recs := make([]*kgo.Record, n)
	for i := range recs {
		recs[i] = &kgo.Record{Topic: topic, Partition: partition, Value: []byte("v")}
	}
	res := cl.ProduceSync(context.Background(), recs...)
	if err := res.FirstErr(); err != nil {
		t.Fatalf("producing to %s/%d: %v", topic, partition, err)
	}
	return recs[n-1].Offset
}

// producer returns a client that writes to the partition set on each record.
func producer(t testing.TB, addrs []string) *kgo.Client {
	return newClient(t, addrs, kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.ProducerLinger(0))
}

// fakeClock is a settable clock for Options.Now.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

func newEngine(t testing.TB, opts Options) *Engine {
	t.Helper()
	if tt, ok := t.(*testing.T); ok && opts.Logger.GetSink() == nil {
		opts.Logger = testr.New(tt)
	}
	return NewEngine(opts)
}

func key(name string) ConsumerKey { return ConsumerKey{Namespace: "ns", Name: name} }

func subscription(name string, addrs []string, group string, topics ...string) Subscription {
	return Subscription{
		Consumer:     key(name),
		Cluster:      ClusterConfig{BootstrapServers: addrs},
		Group:        group,
		Topics:       topics,
		PollInterval: time.Second,
	}
}

// mustPoll runs one cycle and fails the test on a cluster error.
func mustPoll(t testing.TB, e *Engine, sub Subscription) {
	t.Helper()
	if err := e.Poll(context.Background(), sub.Cluster.ID()); err != nil {
		t.Fatalf("poll: %v", err)
	}
}

func mustSnapshot(t testing.TB, e *Engine, k ConsumerKey) Snapshot {
	t.Helper()
	s, ok := e.Snapshot(k)
	if !ok {
		t.Fatalf("no snapshot for %s", k)
	}
	return s
}

func partitionOf(t testing.TB, s Snapshot, topic string, p int32) PartitionLag {
	t.Helper()
	for _, pl := range s.Partitions {
		if pl.Topic == topic && pl.Partition == p {
			return pl
		}
	}
	t.Fatalf("snapshot has no partition %s/%d: %+v", topic, p, s.Partitions)
	return PartitionLag{}
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t testing.TB, what string, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// kadmLag is kadm's own lag computation for a group, partition by partition.
func kadmLag(t testing.TB, adm *kadm.Client, group string) map[tp]int64 {
	t.Helper()
	lags, err := adm.Lag(context.Background(), group)
	if err != nil {
		t.Fatalf("kadm lag: %v", err)
	}
	l := lags[group]
	if err := l.Error(); err != nil {
		t.Fatalf("kadm lag for %s: %v", group, err)
	}
	out := make(map[tp]int64)
	for _, ps := range l.Lag {
		for p, ml := range ps {
			if ml.Err != nil {
				t.Fatalf("kadm lag %s/%d: %v", ml.Topic, p, ml.Err)
			}
			out[tp{ml.Topic, p}] = ml.Lag
		}
	}
	return out
}

func fmtInt(i int) string { return strconv.Itoa(i) }

type kmsgKey = kmsg.Key

const listOffsetsKey = kmsg.ListOffsets
