package migrate

import (
	"testing"

	"github.com/lagscale/lagscale/api/v1alpha1"
)

func TestConvertSharedBrokers(t *testing.T) {
	res := convertFile(t, "shared.yaml", Options{})
	if res.Failed() || len(res.Consumers) != 2 || len(res.Clusters) != 1 {
		t.Fatalf("failed=%t consumers=%d clusters=%d", res.Failed(), len(res.Consumers), len(res.Clusters))
	}
	kc := res.Clusters[0]
	if kc.Namespace != "shop" || kc.Spec.SASL == nil || kc.Spec.SASL.Mechanism != v1alpha1.SASLScramSHA256 || kc.Spec.SASL.SecretRef.Name != "shop-kafka-user" ||
		kc.Spec.TLS == nil || kc.Spec.TLS.CASecretRef.Name != "shop-kafka-ca" || kc.Spec.TLS.CASecretRef.Key != "ca.crt" || len(kc.Spec.BootstrapServers) != 2 {
		t.Errorf("KafkaCluster = %+v", kc.Spec)
	}
	for _, name := range []string{"orders", "refunds"} {
		k := consumer(t, res, name).Spec.Kafka
		if k.ClusterRef == nil || k.ClusterRef.Name != kc.Name || k.BootstrapServers != nil || k.SASL != nil || k.TLS != nil {
			t.Errorf("%s: kafka = %+v", name, k)
		}
	}
	if got := consumer(t, res, "orders").Spec.Topics; len(got) != 2 || got[1] != "orders.updated" {
		t.Errorf("apache-kafka topic list = %q", got)
	}
}

func TestClusterName(t *testing.T) {
	tests := []struct{ server, want string }{
		{"kafka-0.kafka.svc:9092", "kafka-0-kafka-svc"},
		{"Broker_1.Example.COM:9093", "broker-1-example-com"},
		{"[::1]:9092", "1"},
		{"", "kafka"},
		{"---:9092", "kafka"},
		{"a-very-long-broker-host-name-that-goes-on.and-on.example.internal:9092", "a-very-long-broker-host-name-that-goes-on-and-on-e"},
	}
	for _, tt := range tests {
		if got := clusterName(tt.server); got != tt.want {
			t.Errorf("clusterName(%q) = %q, want %q", tt.server, got, tt.want)
		}
	}
}
