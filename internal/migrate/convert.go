package migrate

import (
	"fmt"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/lagscale/lagscale/api/v1alpha1"
)

// kafkaTrigger reports whether a trigger type is one of KEDA's Kafka
// scalers: kafka (sarama) or apache-kafka (the experimental kafka-go one).
func kafkaTrigger(t string) bool { return t == "kafka" || t == "apache-kafka" }

// convertOne maps one ScaledObject, concern by concern, in the order of
// its report: the trigger, the workload, the connection, the scaling
// parameters, SASL, TLS, the parameters left over, the ScaledObject's own
// fields, then the workload it scales.
func convertOne(so *ScaledObject, in *Input, o Options) (*v1alpha1.EventConsumer, *Report) {
	rep := &Report{ScaledObject: so.Namespace + "/" + so.Name}
	if so.Namespace == "" {
		rep.ScaledObject = so.Name
	}
	trig, trigField := findTrigger(so, rep)
	if trig == nil {
		return nil, rep
	}
	deploy, container := scaleTarget(so, in, o.Own, rep)
	tp := newTriggerParams(trig, trigField, deploy, container, rep)
	resolveAuth(so, trig, trigField, in, tp.params, rep)

	ec := &v1alpha1.EventConsumer{
		TypeMeta:   metav1.TypeMeta{APIVersion: v1alpha1.GroupVersion.String(), Kind: "EventConsumer"},
		ObjectMeta: metav1.ObjectMeta{Name: so.Name, Namespace: so.Namespace},
	}
	ec.Spec.Scaling.Policy = v1alpha1.PolicyLagThreshold
	mapConnection(trig, trigField, ec, tp)
	mapTrigger(trig, trigField, ec, tp)
	mapSASL(ec, tp, o.SASL)
	mapTLS(trigField, ec, tp, o.TLS)
	tp.reportUnused()

	mapScaledObject(so, ec, o.Own, rep)
	switch {
	case !o.Own:
		keepWorkload(so, deploy, ec, rep)
	case deploy != nil:
		mapDeployment(so, deploy, container, ec, rep)
	}
	return ec, rep
}

// findTrigger returns the ScaledObject's one Kafka trigger and its field
// path, reporting the others; nil when there is none.
func findTrigger(so *ScaledObject, rep *Report) (*Trigger, string) {
	var trig *Trigger
	var trigField string
	for i := range so.Spec.Triggers {
		t := &so.Spec.Triggers[i]
		f := fmt.Sprintf("spec.triggers[%d]", i)
		if !kafkaTrigger(t.Type) {
			rep.add(f, Unsupported, "trigger type %q is dropped: lagscale scales on consumer-group lag only, so this workload no longer scales on it", t.Type)
			continue
		}
		if trig != nil {
			rep.essential(f, "a second Kafka trigger: an EventConsumer consumes one consumer group; split the workload into one Deployment per group")
			continue
		}
		trig, trigField = t, f
	}
	if trig == nil {
		rep.essential("spec.triggers", "no kafka or apache-kafka trigger: nothing for lagscale to scale on")
	}
	return trig, trigField
}

// mapConnection maps the brokers, the consumer group and the topics, each
// of which KEDA also takes from the workload's environment.
func mapConnection(trig *Trigger, trigField string, ec *v1alpha1.EventConsumer, tp *triggerParams) {
	rep := tp.rep
	if v, from, ok := tp.fromEnv("bootstrapServers"); ok {
		ec.Spec.Kafka.BootstrapServers = splitList(v)
		if !strings.HasSuffix(from, "FromEnv") {
			rep.add(from, Mapped, "spec.kafka.bootstrapServers %v", ec.Spec.Kafka.BootstrapServers)
		}
	}
	if len(ec.Spec.Kafka.BootstrapServers) == 0 {
		rep.essential(trigField+".metadata.bootstrapServers", "missing: lagscale needs the brokers")
	}
	if v, from, ok := tp.fromEnv("consumerGroup"); ok && v != "" {
		ec.Spec.ConsumerGroup = v
		if !strings.HasSuffix(from, "FromEnv") {
			rep.add(from, Mapped, "spec.consumerGroup %q", v)
		}
	} else {
		rep.essential(trigField+".metadata.consumerGroup", "missing: lagscale needs the consumer group")
	}
	if v, from, ok := tp.fromEnv("topic"); ok && v != "" {
		// The kafka scaler takes one topic; apache-kafka takes a list.
		topics := []string{v}
		if trig.Type == "apache-kafka" || strings.Contains(v, ",") {
			topics = splitList(v)
		}
		ec.Spec.Topics = topics
		if !strings.HasSuffix(from, "FromEnv") {
			rep.add(from, Mapped, "spec.topics %v", topics)
		}
	} else {
		rep.essential(trigField+".metadata.topic", "missing: KEDA then measures every topic the group has committed to, while an EventConsumer names its topics; add topic to the trigger")
	}
}

// splitList splits a comma-separated list, dropping blanks; nil when
// nothing is left.
func splitList(v string) []string {
	var out []string
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}
