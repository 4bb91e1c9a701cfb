package testkit

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
)

// Kafka is a one-broker kfake cluster for tests of handler processes,
// closed when the test ends.
type Kafka struct {
	Addrs []string
	Adm   *kadm.Client
	t     testing.TB
}

// NewKafka starts kfake with topics of parts partitions each.
func NewKafka(t testing.TB, parts int32, topics ...string) *Kafka {
	t.Helper()
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(parts, topics...))
	if err != nil {
		t.Fatalf("kfake: %v", err)
	}
	t.Cleanup(c.Close)
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return &Kafka{Addrs: c.ListenAddrs(), Adm: kadm.NewClient(cl), t: t}
}

// Produce writes per records, "<partition>-<i>", to each of partitions
// 0..parts-1 of topic.
func (k *Kafka) Produce(topic string, parts int32, per int) {
	k.t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(k.Addrs...), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		k.t.Fatal(err)
	}
	defer cl.Close()
	var rs []*kgo.Record
	for i := range per {
		for p := range parts {
			rs = append(rs, &kgo.Record{Topic: topic, Partition: p, Value: fmt.Appendf(nil, "%d-%d", p, i)})
		}
	}
	if err := cl.ProduceSync(context.Background(), rs...).FirstErr(); err != nil {
		k.t.Fatalf("producing: %v", err)
	}
}

// Lagging returns how many records of topic the group has not committed.
func (k *Kafka) Lagging(group, topic string) int64 {
	k.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ends, err := k.Adm.ListEndOffsets(ctx, topic)
	if err != nil {
		k.t.Fatal(err)
	}
	committed := map[int32]int64{}
	offs, err := k.Adm.FetchOffsets(ctx, group)
	if err != nil && !errors.Is(err, kerr.GroupIDNotFound) {
		k.t.Fatal(err)
	}
	offs.Each(func(o kadm.OffsetResponse) {
		if o.Topic == topic && o.Err == nil && o.At > 0 {
			committed[o.Partition] = o.At
		}
	})
	var lag int64
	ends.Each(func(o kadm.ListedOffset) { lag += o.Offset - committed[o.Partition] })
	return lag
}
