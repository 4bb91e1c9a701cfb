package handler_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/lagscale/lagscale/pkg/handler"
)

// scrape returns the consumer's /metrics or /healthz body.
func scrape(c *handler.Consumer, path string) string {
	rec := httptest.NewRecorder()
	c.Handler().ServeHTTP(rec, httptest.NewRequest("GET", path, nil))
	body, _ := io.ReadAll(rec.Body)
	return string(body)
}

// A dead-letter write that keeps failing is retried up to its bound; then
// the record's partition stops at it, visibly (Stats, /healthz, the stalled
// gauge, the dead-letter error counter), while the other partitions carry
// on. Here the write fails because the dead-letter record is larger than
// the producer allows, as it would be against a topic whose
// max.message.bytes is below the source topic's.
func TestFailingDeadLetterWriteStallsOnlyItsPartition(t *testing.T) {
	b := newBroker(t, 2, "orders", "orders-dlq")
	big := strings.Repeat("x", 4096)
	b.produce("orders", 2, 10, func(p int32, i int) string {
		if p == 0 && i == 3 {
			return big
		}
		return fmt.Sprintf("p%d-%d", p, i)
	})
	cfg := b.config("g", "orders")
	cfg.DeadLetterTopic = "orders-dlq"
	led := newLedger()
	m := start(t, func(_ context.Context, r *kgo.Record) error {
		if len(r.Value) == len(big) {
			return errors.New("poison")
		}
		led.add(r)
		return nil
	}, handler.WithConfig(cfg),
		handler.WithRetry(1, time.Millisecond, time.Millisecond),
		handler.WithDeadLetterRetry(3, time.Millisecond, 2*time.Millisecond),
		handler.WithClientOptions(kgo.ProducerBatchMaxBytes(1024)))

	eventually(t, "partition 1 fully committed", func() bool { return b.committed("g", "orders")[1] == 10 })
	eventually(t, "partition 0 reported stalled", func() bool { return len(m.c.Stats().Stalled) == 1 })
	s := m.c.Stats().Stalled[0]
	if s.Partition != 0 || s.Offset != 3 || !strings.Contains(s.Err, "dead-letter topic orders-dlq failed 3 times") || !strings.Contains(s.Err, "poison") {
		t.Errorf("stalled = %+v, want orders/0 at offset 3 after 3 dead-letter writes", s)
	}
	metrics := scrape(m.c, "/metrics")
	for _, want := range []string{"lagscale_handler_partitions_stalled 1", `lagscale_handler_dead_letter_errors_total{topic="orders"} 3`} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %q:\n%s", want, grepLines(metrics, "lagscale_handler_"))
		}
	}
	if h := scrape(m.c, "/healthz"); !strings.Contains(h, "stalled orders/0 at offset 3") {
		t.Errorf("/healthz does not list the stalled partition:\n%s", h)
	}
	if got := b.committed("g", "orders")[0]; got != 3 {
		t.Errorf("partition 0 committed %d, want 3 (stopped at the record that could not be dead-lettered)", got)
	}
	for o := int64(4); o < 10; o++ {
		if led.count(0, o) != 0 {
			t.Errorf("offset %d of the stalled partition was handled", o)
		}
	}
	if n := m.c.Stats().DeadLettered; n != 0 {
		t.Errorf("DeadLettered = %d, want 0: no write succeeded", n)
	}
	m.stop(t)
	if got := b.committed("g", "orders")[0]; got != 3 {
		t.Errorf("after shutdown partition 0 committed %d, want 3", got)
	}
}

// Every call carries a deadline (WithCallTimeout): a call that honours its
// context ends by it, counts as a failed attempt and the record goes to the
// dead-letter topic, so a stuck record cannot hold up its partition (and a
// rebalance) for longer than the call timeout.
func TestHandlerCallHasADeadline(t *testing.T) {
	b := newBroker(t, 1, "orders", "orders-dlq")
	b.produce("orders", 1, 5, nil)
	cfg := b.config("g", "orders")
	cfg.DeadLetterTopic = "orders-dlq"
	const timeout = 200 * time.Millisecond
	var sawDeadline atomic.Bool
	var overshoot atomic.Int64 // how far past timeout a call's deadline was set
	m := start(t, func(ctx context.Context, r *kgo.Record) error {
		dl, ok := ctx.Deadline()
		if !ok {
			return nil // without a deadline the stuck record would block forever below
		}
		sawDeadline.Store(true)
		if d := time.Until(dl) - timeout; d > 0 {
			overshoot.Store(int64(d))
		}
		if r.Offset == 2 {
			<-ctx.Done() // stuck until the deadline
			return ctx.Err()
		}
		return nil
	}, handler.WithConfig(cfg), handler.WithRetry(1, time.Millisecond, time.Millisecond), handler.WithCallTimeout(timeout))

	eventually(t, "partition committed to the end", func() bool { return b.committed("g", "orders")[0] == 5 })
	if !sawDeadline.Load() {
		t.Fatal("the handler's context had no deadline")
	}
	if d := time.Duration(overshoot.Load()); d > 0 {
		t.Errorf("a call's deadline was %s beyond the call timeout", d)
	}
	if s := m.c.Stats(); s.DeadLettered != 1 || s.Handled != 4 {
		t.Errorf("stats = %+v, want 4 handled and the stuck record dead-lettered", s)
	}
}

// Shutdown with a call stuck at offset 2. When the call honours its
// context, its deadline (WithCallTimeout) ends it although the shutdown
// timeout is an hour away, and Run returns. When it ignores its context,
// the shutdown timeout still bounds Run. Either way the stuck record stays
// uncommitted for the next owner and what was handled before it is
// committed. Without a call deadline the first case hangs for the whole
// shutdown timeout.
func TestShutdownWithAStuckCall(t *testing.T) {
	tests := []struct {
		name            string
		honoursContext  bool
		callTimeout     time.Duration
		shutdownTimeout time.Duration
	}{
		{name: "the call's deadline expires during shutdown", honoursContext: true, callTimeout: 2 * time.Second, shutdownTimeout: time.Hour},
		{name: "the shutdown deadline expires, the call ignores its context", honoursContext: false, callTimeout: time.Hour, shutdownTimeout: 200 * time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := newBroker(t, 1, "orders")
			b.produce("orders", 1, 5, nil)
			release := make(chan struct{})
			var once sync.Once
			t.Cleanup(func() { once.Do(func() { close(release) }) })
			var stuck atomic.Bool
			m := start(t, func(ctx context.Context, r *kgo.Record) error {
				if r.Offset != 2 {
					return nil
				}
				stuck.Store(true)
				if tt.honoursContext {
					<-ctx.Done()
					return ctx.Err()
				}
				<-release
				return nil
			}, handler.WithConfig(b.config("g", "orders")), handler.WithShutdownTimeout(tt.shutdownTimeout), handler.WithCallTimeout(tt.callTimeout))

			eventually(t, "the call at offset 2 is stuck", stuck.Load)
			eventually(t, "offsets before the stuck record committed", func() bool { return b.committed("g", "orders")[0] == 2 })
			m.stop(t)
			if got := b.committed("g", "orders")[0]; got != 2 {
				t.Errorf("after shutdown committed %d, want 2 (the stuck record stays uncommitted)", got)
			}
			timeouts := strings.Contains(scrape(m.c, "/metrics"), "lagscale_handler_call_timeouts_total 1")
			if timeouts != tt.honoursContext {
				t.Errorf("call timeout counted: %v, want %v", timeouts, tt.honoursContext)
			}
		})
	}
}

// produceTxns writes n transactions of per records each to partition 0 of
// topic, committing the even ones and aborting the odd ones, with a real
// transactional franz-go producer. It returns the values of the committed
// records.
func (b *broker) produceTxns(topic string, n, per int) map[string]bool {
	b.t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(b.addrs...), kgo.TransactionalID("txn-test"),
		kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.ProducerLinger(0))
	if err != nil {
		b.t.Fatalf("transactional producer: %v", err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	committed := map[string]bool{}
	for i := range n {
		if err := cl.BeginTransaction(); err != nil {
			b.t.Fatalf("begin transaction: %v", err)
		}
		commit := i%2 == 0
		for j := range per {
			v := fmt.Sprintf("txn%d-%d", i, j)
			if err := cl.ProduceSync(ctx, &kgo.Record{Topic: topic, Partition: 0, Value: []byte(v)}).FirstErr(); err != nil {
				b.t.Fatalf("producing in a transaction: %v", err)
			}
			if commit {
				committed[v] = true
			}
		}
		if err := cl.EndTransaction(ctx, kgo.TransactionEndTry(commit)); err != nil {
			b.t.Fatalf("ending transaction: %v", err)
		}
	}
	return committed
}

// The SDK reads read-committed by default: of 10 transactions, 5 aborted,
// only the committed records reach the handler. KAFKA_ISOLATION_LEVEL=
// read_uncommitted opts out and sees the aborted ones too.
func TestReadCommittedByDefault(t *testing.T) {
	tests := []struct {
		name      string
		isolation string // KAFKA_ISOLATION_LEVEL
		aborted   bool   // whether aborted records reach the handler
	}{
		{name: "default is read_committed", isolation: "", aborted: false},
		{name: "read_uncommitted opts out", isolation: "read_uncommitted", aborted: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := newBroker(t, 1, "orders")
			committed := b.produceTxns("orders", 10, 10)
			last := "txn8-9" // the last record of the last committed transaction
			env := map[string]string{
				handler.EnvBootstrapServers: strings.Join(b.addrs, ","),
				handler.EnvTopics:           "orders",
				handler.EnvConsumerGroup:    "g",
				handler.EnvAutoOffsetReset:  "earliest",
				handler.EnvIsolationLevel:   tt.isolation,
			}
			var mu sync.Mutex
			seen := map[string]bool{}
			start(t, func(_ context.Context, r *kgo.Record) error {
				mu.Lock()
				seen[string(r.Value)] = true
				mu.Unlock()
				return nil
			}, handler.WithGetenv(func(k string) string { return env[k] }))
			// Records come in offset order and the last transaction that
			// wrote data is committed, so once its last record is handled
			// every aborted record before it had its chance.
			eventually(t, "the last committed record handled", func() bool {
				mu.Lock()
				defer mu.Unlock()
				return seen[last]
			})
			mu.Lock()
			defer mu.Unlock()
			var gotAborted, gotCommitted int
			for v := range seen {
				if committed[v] {
					gotCommitted++
				} else {
					gotAborted++
				}
			}
			if gotCommitted != len(committed) {
				t.Errorf("handled %d committed records, want %d", gotCommitted, len(committed))
			}
			if tt.aborted != (gotAborted > 0) {
				t.Errorf("handled %d records of aborted transactions; want aborted records handled: %v", gotAborted, tt.aborted)
			}
		})
	}
}

// With the default offset reset (latest), a partition added while the
// handler runs is consumed from its start: the records produced to it
// before the member notices the partition are not skipped.
func TestPartitionAddedAtRuntimeIsConsumedFromItsStart(t *testing.T) {
	b := newBroker(t, 1, "orders")
	b.produce("orders", 1, 5, nil) // before the handler starts: latest skips these
	cfg := b.config("g", "orders")
	cfg.AutoOffsetReset = handler.ResetLatest
	led := newLedger()
	start(t, func(_ context.Context, r *kgo.Record) error {
		led.add(r)
		return nil
	}, handler.WithConfig(cfg), handler.WithClientOptions(kgo.MetadataMaxAge(time.Second), kgo.MetadataMinAge(100*time.Millisecond)))

	// The member is in the group and at the end of partition 0.
	eventually(t, "a record produced after the start handled", func() bool {
		b.produce("orders", 1, 1, func(int32, int) string { return "probe" })
		return led.distinct() > 0
	})
	if n := led.count(0, 0); n != 0 {
		t.Errorf("offset 0 of partition 0, produced before the start, was handled %d times with latest", n)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := b.adm.CreatePartitions(ctx, 1, "orders"); err != nil {
		t.Fatalf("adding a partition: %v", err)
	}
	// Produced at once, before the member's next metadata refresh.
	b.produce("orders", 2, 20, nil)
	eventually(t, "every record of the new partition handled", func() bool {
		for o := int64(0); o < 20; o++ {
			if led.count(1, o) == 0 {
				return false
			}
		}
		return true
	})
}
