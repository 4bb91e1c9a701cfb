//go:build kafka

package kafka

import (
	"context"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/lagscale/lagscale/internal/lag"
	"github.com/lagscale/lagscale/internal/testkit"
)

// TestFirstTimeLagFromTimestamps: records written ten minutes before the
// engine first looks read as ten minutes old on its first good snapshot, on
// Apache Kafka as on kfake: the engine's Fetch at the commit and its
// reading of the record's timestamp agree with the reference broker.
func TestFirstTimeLagFromTimestamps(t *testing.T) {
	forEachBroker(t, func(t *testing.T, b testkit.Broker) {
		testkit.CreateTopics(t, b, 2, "aged")
		cl := testkit.Client(t, b, kgo.RecordPartitioner(kgo.ManualPartitioner()))
		old := time.Now().Add(-10 * time.Minute)
		var rs []*kgo.Record
		for p := range int32(2) {
			for range 30 {
				rs = append(rs, &kgo.Record{Topic: "aged", Partition: p, Value: []byte("v"), Timestamp: old})
			}
		}
		if err := cl.ProduceSync(context.Background(), rs...).FirstErr(); err != nil {
			t.Fatalf("%s: producing: %v", b.Kind(), err)
		}
		offs := make(kadm.Offsets)
		offs.AddOffset("aged", 0, 5, -1)
		offs.AddOffset("aged", 1, 12, -1)
		if err := b.Admin().CommitAllOffsets(context.Background(), "aged-g", offs); err != nil {
			t.Fatalf("%s: commit: %v", b.Kind(), err)
		}
		s := engineLag(t, b, "aged-g", lag.ResetLatest, "aged")
		if s.TimestampsUnreadable != "" {
			t.Fatalf("%s: %s", b.Kind(), s.TimestampsUnreadable)
		}
		for _, pl := range s.Partitions {
			if pl.TimeLagSeconds < 590 || pl.TimeLagSeconds > 660 {
				t.Errorf("%s: partition %d: first time lag %.1fs, want about 600s", b.Kind(), pl.Partition, pl.TimeLagSeconds)
			}
		}
		if s.TotalLag != 43 {
			t.Errorf("%s: total lag %d, want 43", b.Kind(), s.TotalLag)
		}
	})
}
