package testkit

import (
	"context"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// Broker is a Kafka cluster a test runs against: kfake (NewKafka), which
// starts in milliseconds, or Apache Kafka (StartApache), the reference
// that decides who is right. A test written against Broker runs on both.
type Broker interface {
	// Kind names the broker for test names and messages: "kfake" or
	// "apache-<version>".
	Kind() string
	// Bootstrap is the PLAINTEXT listener.
	Bootstrap() []string
	// Admin is an admin client on the PLAINTEXT listener, closed when the
	// test ends.
	Admin() *kadm.Client
}

// Kind implements Broker.
func (k *Kafka) Kind() string { return "kfake" }

// Bootstrap implements Broker.
func (k *Kafka) Bootstrap() []string { return k.Addrs }

// Admin implements Broker.
func (k *Kafka) Admin() *kadm.Client { return k.Adm }

// Client returns a franz-go client on b's PLAINTEXT listener with opts,
// closed when the test ends.
func Client(t testing.TB, b Broker, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(b.Bootstrap()...)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl
}

// CreateTopics creates topics of parts partitions and replication factor
// 1 on b, failing the test on any error, and waits until every partition
// has a leader so that the first produce does not race the creation.
func CreateTopics(t testing.TB, b Broker, parts int32, topics ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	resps, err := b.Admin().CreateTopics(ctx, parts, 1, nil, topics...)
	if err != nil {
		t.Fatalf("%s: creating topics %v: %v", b.Kind(), topics, err)
	}
	for _, r := range resps.Sorted() {
		if r.Err != nil {
			t.Fatalf("%s: creating topic %s: %v", b.Kind(), r.Topic, r.Err)
		}
	}
	WaitFor(t, 30*time.Second, "leaders of "+b.Kind()+" topics", func() bool {
		ends, err := b.Admin().ListEndOffsets(ctx, topics...)
		if err != nil {
			return false
		}
		n := 0
		ok := true
		ends.Each(func(o kadm.ListedOffset) {
			n++
			if o.Err != nil {
				ok = false
			}
		})
		return ok && n == int(parts)*len(topics)
	})
}
