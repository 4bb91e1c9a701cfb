package handler_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/lagscale/lagscale/internal/testkit"
	"github.com/lagscale/lagscale/pkg/handler"
)

// broker is an in-process kfake cluster with helpers to produce and to
// read the group's committed offsets.
type broker struct {
	t     testing.TB
	addrs []string
	adm   *kadm.Client
}

func newBroker(t testing.TB, partitions int32, topics ...string) *broker {
	t.Helper()
	k := testkit.NewKafka(t, partitions, topics...)
	return &broker{t: t, addrs: k.Addrs, adm: k.Adm}
}

// produce writes n records to each of partitions 0..parts-1 with values
// "p<partition>-<i>", using a real franz-go producer (snappy by default).
func (b *broker) produce(topic string, parts int32, n int, value func(p int32, i int) string) {
	b.t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(b.addrs...), kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.ProducerLinger(0))
	if err != nil {
		b.t.Fatalf("producer: %v", err)
	}
	defer cl.Close()
	var recs []*kgo.Record
	for i := range n {
		for p := range parts {
			v := fmt.Sprintf("p%d-%d", p, i)
			if value != nil {
				v = value(p, i)
			}
			recs = append(recs, &kgo.Record{Topic: topic, Partition: p, Value: []byte(v)})
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for len(recs) > 0 {
		k := min(len(recs), 5000)
		if err := cl.ProduceSync(ctx, recs[:k]...).FirstErr(); err != nil {
			b.t.Fatalf("producing: %v", err)
		}
		recs = recs[k:]
	}
}

// committed returns the group's committed offset per partition of topic.
func (b *broker) committed(group, topic string) map[int32]int64 {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	os, err := b.adm.FetchOffsets(ctx, group)
	if errors.Is(err, kerr.GroupIDNotFound) {
		return map[int32]int64{}
	}
	if err != nil {
		b.t.Fatalf("fetching offsets: %v", err)
	}
	out := map[int32]int64{}
	os.Each(func(o kadm.OffsetResponse) {
		if o.Topic == topic && o.Err == nil {
			out[o.Partition] = o.At
		}
	})
	return out
}

// ends returns the end offset per partition of topic.
func (b *broker) ends(topic string) map[int32]int64 {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ls, err := b.adm.ListEndOffsets(ctx, topic)
	if err != nil {
		b.t.Fatalf("listing end offsets: %v", err)
	}
	out := map[int32]int64{}
	ls.Each(func(o kadm.ListedOffset) { out[o.Partition] = o.Offset })
	return out
}

func (b *broker) config(group string, topics ...string) handler.Config {
	return handler.Config{
		Brokers: b.addrs, Topics: topics, Group: group,
		SecurityProtocol: handler.ProtocolPlaintext, AutoOffsetReset: handler.ResetEarliest,
	}
}

// eventually polls cond until it holds or the deadline passes. It is a
// wait, not a performance assertion: the deadline only bounds a hang.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// member is one running handler.
type member struct {
	c      *handler.Consumer
	cancel context.CancelFunc
	done   chan error
}

func start(t *testing.T, fn handler.Func, opts ...handler.Option) *member {
	t.Helper()
	opts = append([]handler.Option{handler.WithHTTPAddr(""), handler.WithLogger(logr.Discard()), handler.WithCommitInterval(50 * time.Millisecond)}, opts...)
	c, err := handler.New(fn, opts...)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	m := &member{c: c, cancel: cancel, done: make(chan error, 1)}
	go func() { m.done <- c.Run(ctx) }()
	t.Cleanup(func() { m.stop(t) })
	return m
}

// stop cancels the member like SIGTERM and waits for Run to return.
func (m *member) stop(t *testing.T) {
	t.Helper()
	if m.cancel == nil {
		return
	}
	m.cancel()
	m.cancel = nil
	select {
	case err := <-m.done:
		if err != nil {
			t.Errorf("Run returned %v, want nil after cancel", err)
		}
	case <-time.After(60 * time.Second):
		t.Fatalf("Run did not return after cancel")
	}
}

// ledger records which offsets were handled and how often.
type ledger struct {
	mu   sync.Mutex
	seen map[int32]map[int64]int
}

func newLedger() *ledger { return &ledger{seen: map[int32]map[int64]int{}} }

func (l *ledger) add(r *kgo.Record) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.seen[r.Partition] == nil {
		l.seen[r.Partition] = map[int64]int{}
	}
	l.seen[r.Partition][r.Offset]++
}

// distinct counts the different records handled.
func (l *ledger) distinct() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, m := range l.seen {
		n += len(m)
	}
	return n
}

// waitCommittedToEnd waits until group has committed the end offset of
// every partition of topic, and returns those ends.
func (b *broker) waitCommittedToEnd(t *testing.T, group, topic, what string) map[int32]int64 {
	t.Helper()
	ends := b.ends(topic)
	eventually(t, what, func() bool {
		c := b.committed(group, topic)
		for p, e := range ends {
			if c[p] != e {
				return false
			}
		}
		return true
	})
	return ends
}

func (l *ledger) count(p int32, o int64) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.seen[p][o]
}

// check reports records never handled and records handled more than once
// among offsets [0, ends[p]).
func (l *ledger) check(ends map[int32]int64) (missing, dups int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for p, end := range ends {
		for o := range end {
			switch n := l.seen[p][o]; {
			case n == 0:
				missing++
			case n > 1:
				dups += n - 1
			}
		}
	}
	return missing, dups
}

func noop(context.Context, *kgo.Record) error { return nil }
