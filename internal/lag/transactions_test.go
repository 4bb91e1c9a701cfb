package lag

import (
	"context"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
)

// TestTransactionalLagAfterReadCommittedConsumer guards two things of a
// transactional topic, once a read-committed consumer has handled every
// committed record:
//   - the trailing markers and aborted records after its commit are no lag
//     (franz-go commits the offset after the last record, short of the
//     marker: partition 0 ends on a commit marker, partition 1 on an
//     aborted transaction);
//   - the end is the last stable offset, so records of a transaction still
//     open (partition 0) are no lag yet either.
func TestTransactionalLagAfterReadCommittedConsumer(t *testing.T) {
	kf := newKafka(t, kfake.SeedTopics(2, "tx"))
	addrs := kf.ListenAddrs()
	ctx := context.Background()

	txp := newClient(t, addrs, kgo.TransactionalID("lag-tx"), kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.ProducerLinger(0))
	txn := func(part int32, n int, commit bool) {
		t.Helper()
		if err := txp.BeginTransaction(); err != nil {
			t.Fatal(err)
		}
		for range n {
			if err := txp.ProduceSync(ctx, &kgo.Record{Topic: "tx", Partition: part, Value: []byte("v")}).FirstErr(); err != nil {
				t.Fatal(err)
			}
		}
		if err := txp.EndTransaction(ctx, kgo.TransactionEndTry(commit)); err != nil {
			t.Fatal(err)
		}
	}
	// Partition 0: records 0-9, marker 10; aborted 11-14, marker 15;
	// records 16-18, marker 19. Partition 1: records 0-9, marker 10;
	// aborted 11-14, marker 15.
	txn(0, 10, true)
	txn(0, 4, false)
	txn(0, 3, true)
	txn(1, 10, true)
	txn(1, 4, false)

	cons := newClient(t, addrs, kgo.ConsumerGroup("g"), kgo.ConsumeTopics("tx"),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()), kgo.DisableAutoCommit(),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchMaxWait(100*time.Millisecond))
	got := 0
	waitFor(t, "the consumer to handle every committed record", 20*time.Second, func() bool {
		pctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
		defer cancel()
		fs := cons.PollFetches(pctx)
		fs.EachRecord(func(r *kgo.Record) {
			if r.Offset >= 11 && r.Offset <= 14 {
				t.Fatalf("aborted record %d/%d reached the read-committed consumer", r.Partition, r.Offset)
			}
		})
		got += fs.NumRecords()
		if err := cons.CommitUncommittedOffsets(ctx); err != nil {
			t.Fatal(err)
		}
		c := cons.CommittedOffsets()["tx"]
		return got == 23 && c[0].Offset == 19 && c[1].Offset == 10
	})

	// An open transaction appends above the last stable offset of
	// partition 0.
	if err := txp.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	for range 5 {
		if err := txp.ProduceSync(ctx, &kgo.Record{Topic: "tx", Partition: 0, Value: []byte("open")}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}

	e := newEngine(t, Options{})
	sub := subscription("c", addrs, "g", "tx")
	e.Register(sub)
	// The first cycle already reads what follows the commits (with the
	// records' timestamps), so that the first reading is settled: no
	// marker or aborted record is ever shown as lag.
	mustPoll(t, e, sub)
	if s := mustSnapshot(t, e, sub.Consumer); s.TotalLag != 0 {
		t.Fatalf("first reading: total lag %d, want 0 (settled before it is shown): %+v", s.TotalLag, s.Partitions)
	}
	mustPoll(t, e, sub)
	s := mustSnapshot(t, e, sub.Consumer)
	p0, p1 := partitionOf(t, s, "tx", 0), partitionOf(t, s, "tx", 1)
	if p0.CommittedOffset != 19 || p0.EndOffset != 20 || p0.Lag != 0 {
		t.Fatalf("partition 0 (commit marker, then an open transaction): %+v, want committed 19, end (last stable offset) 20, lag 0", p0)
	}
	if p1.CommittedOffset != 10 || p1.EndOffset != 16 || p1.Lag != 0 {
		t.Fatalf("partition 1 (commit marker, aborted transaction, abort marker): %+v, want committed 10, end 16, lag 0", p1)
	}
	if s.TotalLag != 0 {
		t.Fatalf("total lag %d, want 0", s.TotalLag)
	}

	// The open transaction aborts: its records and marker join the
	// skipped range of partition 0. Two new committed records on
	// partition 1 are lag again, with their marker until a consumer
	// passes them: end 19 (records 16-17, marker 18) less offset 16.
	if err := txp.EndTransaction(ctx, kgo.TryAbort); err != nil {
		t.Fatal(err)
	}
	txn(1, 2, true)
	mustPoll(t, e, sub)
	s = mustSnapshot(t, e, sub.Consumer)
	if p0 := partitionOf(t, s, "tx", 0); p0.Lag != 0 || p0.EndOffset != 26 {
		t.Fatalf("after the open transaction aborted: %+v, want end 26, lag 0", p0)
	}
	if p1 := partitionOf(t, s, "tx", 1); p1.Lag != 3 || p1.EndOffset != 19 {
		t.Fatalf("after 2 more committed records on partition 1: %+v, want end 19, lag 3", p1)
	}
}

// TestFirstReadingIsSettledForEveryGroup: two groups on one transactional
// partition, one behind (at 0) and one finished (at 10, before a commit
// marker, an aborted transaction and its marker). The first cycle reads
// past the lower commit only; the finished group's first snapshot waits
// until its own commit has been read, and never shows the markers and the
// aborted records as lag.
func TestFirstReadingIsSettledForEveryGroup(t *testing.T) {
	kf := newKafka(t, kfake.SeedTopics(1, "tx"))
	addrs := kf.ListenAddrs()
	ctx := context.Background()
	txp := newClient(t, addrs, kgo.TransactionalID("settle-tx"), kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.ProducerLinger(0))
	txn := func(n int, commit bool) {
		t.Helper()
		if err := txp.BeginTransaction(); err != nil {
			t.Fatal(err)
		}
		for range n {
			if err := txp.ProduceSync(ctx, &kgo.Record{Topic: "tx", Value: []byte("v")}).FirstErr(); err != nil {
				t.Fatal(err)
			}
		}
		if err := txp.EndTransaction(ctx, kgo.TransactionEndTry(commit)); err != nil {
			t.Fatal(err)
		}
	}
	txn(10, true) // records 0-9, marker 10
	txn(4, false) // aborted 11-14, marker 15
	adm := kadm.NewClient(newClient(t, addrs))
	for group, at := range map[string]int64{"behind": 0, "finished": 10} {
		offs := make(kadm.Offsets)
		offs.AddOffset("tx", 0, at, -1)
		if err := adm.CommitAllOffsets(ctx, group, offs); err != nil {
			t.Fatal(err)
		}
	}

	e := newEngine(t, Options{})
	behind, finished := subscription("behind", addrs, "behind", "tx"), subscription("finished", addrs, "finished", "tx")
	e.Register(behind)
	e.Register(finished)
	for cycle := 1; cycle <= 2; cycle++ {
		mustPoll(t, e, behind)
		if s, ok := e.Snapshot(finished.Consumer); ok && s.TotalLag != 0 {
			t.Fatalf("cycle %d: the finished group reads lag %d, want 0: its first reading was written before its markers were read", cycle, s.TotalLag)
		}
		// Offsets 0-15: the markers and the aborted records after records
		// still to consume count, as they do for any group behind.
		if s := mustSnapshot(t, e, behind.Consumer); s.TotalLag != 16 {
			t.Fatalf("cycle %d: the group behind reads lag %d, want 16", cycle, s.TotalLag)
		}
	}
	if _, ok := e.Snapshot(finished.Consumer); !ok {
		t.Fatal("no snapshot for the finished group after two cycles")
	}
}
