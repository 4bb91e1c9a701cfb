package testkit

import (
	"context"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
)

// ShareLagging returns how many records of topic the share group has not
// acknowledged: per partition the broker's share lag where it reports one,
// else the end offset minus the share-partition start offset, and the whole
// partition when the group has no state on it yet.
func (k *Kafka) ShareLagging(group, topic string) int64 {
	return k.ShareLaggingT(k.t, group, topic)
}

// ShareLaggingT is ShareLagging for a Kafka built from its exported fields,
// failing t on error.
func (k *Kafka) ShareLaggingT(t testing.TB, group, topic string) int64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ends, err := k.Adm.ListEndOffsets(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	offs, err := k.Adm.DescribeShareGroupOffsets(ctx, group)
	if err != nil {
		t.Fatal(err)
	}
	var lag int64
	ends.Each(func(e kadm.ListedOffset) {
		o, ok := offs[group].Offsets[topic][e.Partition]
		switch {
		case !ok || o.Err != nil || o.StartOffset < 0:
			lag += e.Offset
		case o.Lag >= 0:
			lag += o.Lag
		default:
			lag += e.Offset - o.StartOffset
		}
	})
	return lag
}
