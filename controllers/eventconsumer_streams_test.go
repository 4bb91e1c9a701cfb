package controllers

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"k8s.io/apimachinery/pkg/api/meta"

	"github.com/lagscale/lagscale/api/v1alpha1"
)

// TestStreamsOnBrokerWithoutKIP1071: a groupType Streams consumer on a
// broker that has no streams groups (kfake, like Apache Kafka 3.9) is
// Ready=False and Stalled with a reason naming the missing protocol, not
// KafkaUnreachable, since retrying cannot help.
func TestStreamsOnBrokerWithoutKIP1071(t *testing.T) {
	kafka := startKafka(t, kfake.SeedTopics(2, "words"))
	startOperator(t, withEngine(t))
	ns := namespace(t)
	createConsumer(t, ns, "counter", v1alpha1.EventConsumerSpec{
		ConsumerGroup: "counter", GroupType: v1alpha1.GroupTypeStreams,
		Kafka:   v1alpha1.KafkaConnection{BootstrapServers: kafka.ListenAddrs()},
		Handler: &v1alpha1.HandlerSpec{Image: "streams-handler:1"},
		Scaling: v1alpha1.ScalingSpec{PollIntervalSeconds: ptrTo[int32](1)},
	})
	eventually(t, 30*time.Second, func() error {
		ready, ec := readyCondition(t, ns, "counter")
		stalled := meta.FindStatusCondition(ec.Status.Conditions, v1alpha1.ConditionStalled)
		switch {
		case ready == nil || ready.Reason != v1alpha1.ReasonStreamsUnsupported:
			return fmt.Errorf("Ready %+v, want reason %s", ready, v1alpha1.ReasonStreamsUnsupported)
		case ready.Status != "False" || !strings.Contains(ready.Message, "StreamsGroupDescribe (API key 89)"):
			return fmt.Errorf("Ready %s %q, want False naming StreamsGroupDescribe (API key 89)", ready.Status, ready.Message)
		case stalled == nil || stalled.Status != "True":
			return fmt.Errorf("Stalled %+v, want True", stalled)
		}
		return nil
	})
}
