//go:build kafka

package kafka

import (
	"context"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/lagscale/lagscale/internal/lag"
	"github.com/lagscale/lagscale/internal/testkit"
)

// TestLagTransactional: a topic with committed and aborted transactions.
// Once a read-committed consumer has handled every committed record, the
// markers and aborted records do not count as lag, on every partition; the
// engine's end offset is kadm's ListCommittedOffsets (the last stable
// offset), and an open transaction is no lag yet.
func TestLagTransactional(t *testing.T) {
	forEachBroker(t, func(t *testing.T, b testkit.Broker) {
		testkit.CreateTopics(t, b, 2, "tx")
		ctx := context.Background()
		txp := testkit.Client(t, b, kgo.TransactionalID("compat-tx"), kgo.RecordPartitioner(kgo.ManualPartitioner()))
		txn := func(part int32, n int, commit bool) {
			t.Helper()
			if err := txp.BeginTransaction(); err != nil {
				t.Fatal(err)
			}
			val := []byte("committed")
			if !commit {
				val = []byte("aborted")
			}
			for range n {
				if err := txp.ProduceSync(ctx, &kgo.Record{Topic: "tx", Partition: part, Value: val}).FirstErr(); err != nil {
					t.Fatal(err)
				}
			}
			if err := txp.EndTransaction(ctx, kgo.TransactionEndTry(commit)); err != nil {
				t.Fatal(err)
			}
		}
		txn(0, 10, true)
		txn(0, 4, false)
		txn(0, 3, true) // partition 0 ends on a commit marker
		txn(1, 10, true)
		txn(1, 4, false) // partition 1 ends on an aborted transaction

		cons := testkit.Client(t, b, kgo.ConsumerGroup("tx-g"), kgo.ConsumeTopics("tx"),
			kgo.FetchIsolationLevel(kgo.ReadCommitted()), kgo.DisableAutoCommit(),
			kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchMaxWait(200*time.Millisecond))
		got := 0
		testkit.WaitFor(t, 60*time.Second, b.Kind()+": the read-committed consumer to handle every committed record", func() bool {
			pctx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
			defer cancel()
			fs := cons.PollFetches(pctx)
			fs.EachRecord(func(r *kgo.Record) {
				if string(r.Value) != "committed" {
					t.Fatalf("%s: aborted record %d/%d reached the read-committed consumer", b.Kind(), r.Partition, r.Offset)
				}
			})
			got += fs.NumRecords()
			if err := cons.CommitUncommittedOffsets(ctx); err != nil {
				t.Fatal(err)
			}
			c := cons.CommittedOffsets()["tx"]
			return got == 23 && c[0].Offset == 19 && c[1].Offset == 10
		})
		// The consumer committed after its last record, short of the
		// markers: lag by offsets alone is one marker on partition 0 and
		// an aborted transaction with its marker on partition 1.
		if ref := reference(t, b.Admin(), "tx-g", lag.ResetEarliest, true, "tx"); ref[tp{"tx", 0}] != 1 || ref[tp{"tx", 1}] != 6 {
			t.Fatalf("%s: end minus commit by kadm %v, want 1 and 6", b.Kind(), ref)
		}

		// An open transaction on partition 0 moves the high watermark, not
		// the last stable offset.
		if err := txp.BeginTransaction(); err != nil {
			t.Fatal(err)
		}
		for range 5 {
			if err := txp.ProduceSync(ctx, &kgo.Record{Topic: "tx", Partition: 0, Value: []byte("open")}).FirstErr(); err != nil {
				t.Fatal(err)
			}
		}
		defer func() { _ = txp.EndTransaction(ctx, kgo.TryAbort) }()

		s := engineLag(t, b, "tx-g", lag.ResetEarliest, "tx")
		lso, err := b.Admin().ListCommittedOffsets(ctx, "tx")
		if err != nil {
			t.Fatal(err)
		}
		hwm, err := b.Admin().ListEndOffsets(ctx, "tx")
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range s.Partitions {
			l, _ := lso.Lookup("tx", p.Partition)
			h, _ := hwm.Lookup("tx", p.Partition)
			t.Logf("%s: tx/%d committed %d, last stable offset %d, high watermark %d, engine end %d lag %d", b.Kind(), p.Partition, p.CommittedOffset, l.Offset, h.Offset, p.EndOffset, p.Lag)
			if p.EndOffset != l.Offset {
				t.Fatalf("%s: tx/%d engine end %d, kadm ListCommittedOffsets %d", b.Kind(), p.Partition, p.EndOffset, l.Offset)
			}
		}
		sameLag(t, b, "a finished read-committed consumer", s, map[tp]int64{{"tx", 0}: 0, {"tx", 1}: 0})
	})
}
