package controllers

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/lagscale/lagscale/api/v1alpha1"
)

// TestGroupTypeMismatchCondition runs two KIP-848 members while the
// EventConsumer still says Classic: the status shows the broker's type,
// the members and the epochs, and GroupTypeMatches is False with a
// message saying what to do; after spec.groupType becomes Consumer it is
// True.
func TestGroupTypeMismatchCondition(t *testing.T) {
	kafka := startKafka(t, kfake.SeedTopics(2, "orders"))
	addrs := kafka.ListenAddrs()
	for range 2 {
		m := kafkaClient(t, addrs, kgo.ConsumerGroup("kip848-group"), kgo.ConsumeTopics("orders"), kgo.ServerSideBalancer(), kgo.FetchMaxWait(100*time.Millisecond))
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() {
			defer close(done)
			for ctx.Err() == nil {
				m.PollFetches(ctx)
			}
		}()
		t.Cleanup(func() { cancel(); <-done })
	}
	adm := kadm.NewClient(kafkaClient(t, addrs))
	eventually(t, wait, func() error {
		gs, err := adm.DescribeConsumerGroups(context.Background(), "kip848-group")
		if err != nil {
			return err
		}
		if n := len(gs["kip848-group"].Members); n != 2 {
			return fmt.Errorf("%d members", n)
		}
		return nil
	})

	startOperator(t, withEngine(t))
	ns := namespace(t)
	createConsumer(t, ns, "orders", v1alpha1.EventConsumerSpec{
		Topics: []string{"orders"}, ConsumerGroup: "kip848-group",
		Kafka:   v1alpha1.KafkaConnection{BootstrapServers: addrs},
		Handler: &v1alpha1.HandlerSpec{Image: "handler:1"},
		Scaling: v1alpha1.ScalingSpec{PollIntervalSeconds: ptrTo[int32](1)},
	})
	eventually(t, wait, func() error {
		ec := getConsumer(t, ns, "orders")
		l := ec.Status.Lag
		if l == nil || l.GroupType != "Consumer" || l.Members != 2 || l.GroupEpoch == nil || *l.GroupEpoch <= 0 || l.AssignmentEpoch == nil {
			return fmt.Errorf("lag status %+v", l)
		}
		c := meta.FindStatusCondition(ec.Status.Conditions, v1alpha1.ConditionGroupTypeMatches)
		if c == nil || c.Status != metav1.ConditionFalse || c.Reason != v1alpha1.ReasonGroupTypeMismatch {
			return fmt.Errorf("GroupTypeMatches %+v", c)
		}
		if want := "the broker reports group kip848-group as a Consumer group with 2 members, but spec.groupType is Classic: the handlers run the consumer protocol; restart them so they take KAFKA_GROUP_TYPE=classic, or set spec.groupType to Consumer"; c.Message != want {
			t.Fatalf("message %q, want %q", c.Message, want)
		}
		return nil
	})

	ec := getConsumer(t, ns, "orders")
	ec.Spec.GroupType = v1alpha1.GroupTypeConsumer
	if err := env.Client.Update(context.Background(), ec); err != nil {
		t.Fatalf("Classic to Consumer: %v", err)
	}
	eventually(t, wait, func() error {
		c := meta.FindStatusCondition(getConsumer(t, ns, "orders").Status.Conditions, v1alpha1.ConditionGroupTypeMatches)
		if c == nil || c.Status != metav1.ConditionTrue || !strings.Contains(c.Message, "as a Consumer group") {
			return fmt.Errorf("GroupTypeMatches %+v", c)
		}
		return nil
	})
}
