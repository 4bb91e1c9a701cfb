package controllers

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/lagscale/lagscale/api/v1alpha1"
)

// TestFirstStatusTimeLagFromRecordTimestamps: a backlog written ten minutes
// before the EventConsumer is applied shows a time lag of about 600 s in
// its first lag status, read from the records' timestamps, not 0 growing
// with the wall clock from when lagscale first looked.
func TestFirstStatusTimeLagFromRecordTimestamps(t *testing.T) {
	kafka := startKafka(t, kfake.SeedTopics(2, "aged"))
	addrs := kafka.ListenAddrs()
	prod := kafkaClient(t, addrs, kgo.RecordPartitioner(kgo.ManualPartitioner()))
	old := time.Now().Add(-10 * time.Minute)
	for p := range int32(2) {
		recs := make([]*kgo.Record, 50)
		for i := range recs {
			recs[i] = &kgo.Record{Topic: "aged", Partition: p, Value: []byte("x"), Timestamp: old}
		}
		if err := prod.ProduceSync(context.Background(), recs...).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	offsets := kadm.Offsets{}
	offsets.Add(kadm.Offset{Topic: "aged", Partition: 0, At: 0})
	offsets.Add(kadm.Offset{Topic: "aged", Partition: 1, At: 10})
	if _, err := kadm.NewClient(kafkaClient(t, addrs)).CommitOffsets(context.Background(), "aged-group", offsets); err != nil {
		t.Fatal(err)
	}

	startOperator(t, withEngine(t))
	ns := namespace(t)
	createConsumer(t, ns, "aged", v1alpha1.EventConsumerSpec{
		Topics: []string{"aged"}, ConsumerGroup: "aged-group",
		Kafka:   v1alpha1.KafkaConnection{BootstrapServers: addrs},
		Handler: &v1alpha1.HandlerSpec{Image: "handler:1"},
		Scaling: v1alpha1.ScalingSpec{PollIntervalSeconds: ptrTo[int32](1)},
	})
	var first *v1alpha1.LagStatus
	eventually(t, wait, func() error {
		if first = getConsumer(t, ns, "aged").Status.Lag; first == nil {
			return fmt.Errorf("no lag status yet")
		}
		return nil
	})
	t.Logf("first lag status: total %d, seconds %.1f", first.Total, first.Seconds)
	if first.Total != 90 || first.Seconds < 590 || first.Seconds > 660 {
		t.Fatalf("first lag status: total %d, seconds %.1f; want 90 and about 600 (the records' age)", first.Total, first.Seconds)
	}
	if first.TimestampsUnreadable != "" {
		t.Fatalf("timestampsUnreadable %q on an open broker", first.TimestampsUnreadable)
	}
}
