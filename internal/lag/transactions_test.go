package lag

import (
	"context"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
)

// TestLagAgainstLastStableOffset guards the end offset the engine measures
// against: the last stable offset, not the high watermark. A read-committed
// group that has consumed every committed record has no lag, even while a
// transaction is open and holds records (and its marker) above it.
func TestLagAgainstLastStableOffset(t *testing.T) {
	kf := newKafka(t, kfake.SeedTopics(1, "tx"))
	addrs := kf.ListenAddrs()
	ctx := context.Background()

	txp := newClient(t, addrs, kgo.TransactionalID("lag-lso"), kgo.DefaultProduceTopic("tx"), kgo.ProducerLinger(0))
	txn := func(n int, commit bool) {
		t.Helper()
		if err := txp.BeginTransaction(); err != nil {
			t.Fatal(err)
		}
		for range n {
			if err := txp.ProduceSync(ctx, &kgo.Record{Value: []byte("v")}).FirstErr(); err != nil {
				t.Fatal(err)
			}
		}
		if err := txp.EndTransaction(ctx, kgo.TransactionEndTry(commit)); err != nil {
			t.Fatal(err)
		}
	}
	txn(10, true)
	txn(4, false)
	txn(3, true)

	// A read-committed consumer reads the 13 committed records and commits
	// where its cursor stands, which is past the trailing commit marker.
	cons := newClient(t, addrs, kgo.ConsumerGroup("g"), kgo.ConsumeTopics("tx"),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()), kgo.DisableAutoCommit(),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchMaxWait(100*time.Millisecond))
	got := 0
	waitFor(t, "the consumer to reach the end of the committed records", 20*time.Second, func() bool {
		pctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
		defer cancel()
		got += cons.PollFetches(pctx).NumRecords()
		if err := cons.CommitUncommittedOffsets(ctx); err != nil {
			t.Fatal(err)
		}
		t.Logf("got %d committed %v", got, cons.CommittedOffsets())
		return got == 13 && cons.CommittedOffsets()["tx"][0].Offset == 20
	})

	// An open transaction appends above the last stable offset.
	if err := txp.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	for range 5 {
		if err := txp.ProduceSync(ctx, &kgo.Record{Value: []byte("open")}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() { _ = txp.EndTransaction(ctx, kgo.TryAbort) })

	e := newEngine(t, Options{})
	sub := subscription("c", addrs, "g", "tx")
	mustPoll(t, e, sub)
	p := partitionOf(t, mustSnapshot(t, e, sub.Consumer), "tx", 0)
	if p.CommittedOffset != 20 || p.EndOffset != 20 || p.Lag != 0 {
		t.Fatalf("with a transaction open above the commit: %+v, want committed 20, end (last stable offset) 20, lag 0", p)
	}
}
