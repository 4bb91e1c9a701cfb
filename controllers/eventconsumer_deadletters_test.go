package controllers

import (
	"fmt"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/lagscale/lagscale/api/v1alpha1"
)

// TestDeadLetterTopicInStatus: records arriving in spec.deadLetterTopic
// show in status.lag.deadLetters, and are no lag of the group.
func TestDeadLetterTopicInStatus(t *testing.T) {
	kafka := startKafka(t, kfake.SeedTopics(1, "mails", "mails-dlt"))
	addrs := kafka.ListenAddrs()
	startOperator(t, withEngine(t))
	ns := namespace(t)
	createConsumer(t, ns, "mailer", v1alpha1.EventConsumerSpec{
		Topics: []string{"mails"}, ConsumerGroup: "mailer", DeadLetterTopic: "mails-dlt",
		Kafka:   v1alpha1.KafkaConnection{BootstrapServers: addrs},
		Handler: &v1alpha1.HandlerSpec{Image: "handler:1"},
		Scaling: v1alpha1.ScalingSpec{PollIntervalSeconds: ptrTo[int32](1)},
	})
	prod := kafkaClient(t, addrs, kgo.RecordPartitioner(kgo.ManualPartitioner()))
	produceN(t, prod, "mails-dlt", 0, 7)
	eventually(t, 30*time.Second, func() error {
		l := getConsumer(t, ns, "mailer").Status.Lag
		if l == nil || l.DeadLetters == nil || l.DeadLetters.Topic != "mails-dlt" || l.DeadLetters.Records != 7 || l.Total != 0 {
			return fmt.Errorf("lag status %+v, want 7 dead letters in mails-dlt and no lag", l)
		}
		return nil
	})
}
