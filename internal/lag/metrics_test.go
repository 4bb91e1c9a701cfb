package lag

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kfake"
)

func TestMetricsAndNoTopicSubscription(t *testing.T) {
	kf := newKafka(t, kfake.SeedTopics(1, "unrelated"))
	addrs := kf.ListenAddrs()
	reg := prometheus.NewRegistry()
	e := newEngine(t, Options{Registerer: reg})
	sub := subscription("empty", addrs, "g") // no topics: must not ask for every topic
	e.Register(sub)
	mustPoll(t, e, sub)
	if s := mustSnapshot(t, e, sub.Consumer); s.PartitionCount != 0 || len(s.Partitions) != 0 || s.Stale {
		t.Fatalf("snapshot without topics = %+v, want no partitions", s)
	}

	families, err := reg.Gather()
	if err != nil {
		t.Fatalf("gathering metrics: %v", err)
	}
	found := make(map[string]bool)
	for _, f := range families {
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "cluster" && l.GetValue() == sub.Cluster.Name() {
					found[f.GetName()] = true
				}
			}
		}
	}
	for _, name := range []string{"lagscale_kafka_requests_total", "lagscale_lag_poll_duration_seconds"} {
		if !found[name] {
			t.Errorf("metric %s with cluster=%s not exported; have %v", name, sub.Cluster.Name(), found)
		}
	}
}
