package migrate

import (
	"encoding/json"
	"fmt"
	"regexp"
	"sort"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/lagscale/lagscale/api/v1alpha1"
)

// shareClusters puts the connection of consumers that share brokers,
// TLS and SASL in one namespace into a KafkaCluster they reference, so
// that one client and one poll loop serve them all.
func shareClusters(ecs []*v1alpha1.EventConsumer, reps []*Report) []*v1alpha1.KafkaCluster {
	type group struct {
		key string
		ecs []*v1alpha1.EventConsumer
	}
	var groups []*group
	byKey := map[string]*group{}
	for _, ec := range ecs {
		servers := append([]string(nil), ec.Spec.Kafka.BootstrapServers...)
		sort.Strings(servers)
		tls, _ := json.Marshal(ec.Spec.Kafka.TLS)
		sasl, _ := json.Marshal(ec.Spec.Kafka.SASL)
		key := ec.Namespace + "|" + strings.Join(servers, ",") + "|" + string(tls) + "|" + string(sasl)
		g, ok := byKey[key]
		if !ok {
			g = &group{key: key}
			byKey[key] = g
			groups = append(groups, g)
		}
		g.ecs = append(g.ecs, ec)
	}
	repOf := map[string]*Report{}
	for _, r := range reps {
		repOf[r.ScaledObject] = r
	}
	taken := map[string]bool{}
	var out []*v1alpha1.KafkaCluster
	for _, g := range groups {
		if len(g.ecs) < 2 {
			continue
		}
		first := g.ecs[0]
		name := clusterName(first.Spec.Kafka.BootstrapServers[0])
		for n := 2; taken[first.Namespace+"/"+name]; n++ {
			name = fmt.Sprintf("%s-%d", clusterName(first.Spec.Kafka.BootstrapServers[0]), n)
		}
		taken[first.Namespace+"/"+name] = true
		kc := &v1alpha1.KafkaCluster{
			TypeMeta:   metav1.TypeMeta{APIVersion: v1alpha1.GroupVersion.String(), Kind: "KafkaCluster"},
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: first.Namespace},
			Spec: v1alpha1.KafkaClusterSpec{BootstrapServers: first.Spec.Kafka.BootstrapServers,
				TLS: first.Spec.Kafka.TLS, SASL: first.Spec.Kafka.SASL},
		}
		out = append(out, kc)
		var names []string
		for _, ec := range g.ecs {
			names = append(names, ec.Name)
		}
		for _, ec := range g.ecs {
			ec.Spec.Kafka = v1alpha1.KafkaConnection{ClusterRef: &v1alpha1.LocalObjectRef{Name: name}}
			key := ec.Namespace + "/" + ec.Name
			if ec.Namespace == "" {
				key = ec.Name
			}
			if r := repOf[key]; r != nil {
				r.add("brokers", Mapped, "spec.kafka.clusterRef %s: KafkaCluster shared by %s, which use the same brokers, TLS and SASL", name, strings.Join(names, ", "))
			}
		}
	}
	return out
}

var notDNS = regexp.MustCompile(`[^a-z0-9-]+`)

// clusterName derives a KafkaCluster name from a broker address:
// "kafka-0.kafka.svc:9092" gives "kafka-0-kafka-svc".
func clusterName(server string) string {
	host := server
	if i := strings.LastIndex(host, ":"); i > 0 {
		host = host[:i]
	}
	n := strings.Trim(notDNS.ReplaceAllString(strings.ToLower(host), "-"), "-")
	if len(n) > 50 {
		n = strings.TrimRight(n[:50], "-")
	}
	if n == "" {
		n = "kafka"
	}
	return n
}
