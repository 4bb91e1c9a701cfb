package handler

import (
	"fmt"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// metrics are the handler's Prometheus series. Every name starts with
// lagscale_handler_.
type metrics struct {
	handled       *prometheus.CounterVec
	failed        *prometheus.CounterVec
	deadLettered  *prometheus.CounterVec
	attemptErrors *prometheus.CounterVec
	commitErrors  prometheus.Counter
	latency       *batchHistogram
	inFlight      prometheus.Gauge
	owned         prometheus.Gauge
	stalled       prometheus.Gauge
	// deadLetterErrors counts failed dead-letter writes; callTimeouts
	// counts calls that failed after their deadline.
	deadLetterErrors *prometheus.CounterVec
	callTimeouts     prometheus.Counter

	// handledByTopic caches the handled counter of each configured topic:
	// it is bumped once per record.
	handledByTopic map[string]prometheus.Counter
}

func (m *metrics) handledFor(topic string) prometheus.Counter {
	if c, ok := m.handledByTopic[topic]; ok {
		return c
	}
	return m.handled.WithLabelValues(topic)
}

func newMetrics(reg prometheus.Registerer, private bool, topics []string) (*metrics, error) {
	m := &metrics{
		handled: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "lagscale_handler_records_handled_total",
			Help: "Records the handler function returned nil for.",
		}, []string{"topic"}),
		failed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "lagscale_handler_records_failed_total",
			Help: "Records that failed every attempt (then dead-lettered, or their partition stopped).",
		}, []string{"topic"}),
		deadLettered: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "lagscale_handler_records_dead_lettered_total",
			Help: "Records written to the dead-letter topic.",
		}, []string{"topic"}),
		attemptErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "lagscale_handler_attempt_errors_total",
			Help: "Calls of the handler function that returned an error or panicked.",
		}, []string{"topic"}),
		commitErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "lagscale_handler_commit_errors_total",
			Help: "Offset commits that failed (they are retried with the next commit).",
		}),
		latency: newBatchHistogram("lagscale_handler_handling_seconds",
			"Time one call of the handler function took.",
			prometheus.ExponentialBuckets(0.0005, 2, 16)),
		inFlight: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "lagscale_handler_in_flight_records",
			Help: "Records being handled right now: one per partition being worked on, as a partition's records are handled one at a time.",
		}),
		owned: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "lagscale_handler_partitions_owned",
			Help: "Partitions assigned to this member.",
		}),
		stalled: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "lagscale_handler_partitions_stalled",
			Help: "Owned partitions stopped at a record that failed every attempt and could not be dead-lettered (no dead-letter topic, or every write to it failed).",
		}),
		deadLetterErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "lagscale_handler_dead_letter_errors_total",
			Help: "Writes to the dead-letter topic that failed, by the record's topic.",
		}, []string{"topic"}),
		callTimeouts: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "lagscale_handler_call_timeouts_total",
			Help: "Calls of the handler function that failed after their deadline (WithCallTimeout) passed.",
		}),
	}
	m.handledByTopic = make(map[string]prometheus.Counter, len(topics))
	for _, t := range topics {
		m.handledByTopic[t] = m.handled.WithLabelValues(t)
	}
	cs := []prometheus.Collector{m.handled, m.failed, m.deadLettered, m.attemptErrors, m.commitErrors, m.latency, m.inFlight, m.owned, m.stalled, m.deadLetterErrors, m.callTimeouts}
	if private {
		cs = append(cs, collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	}
	for _, c := range cs {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// Handler returns the HTTP handler that serves /healthz, /readyz and
// /metrics. Run serves it on the configured address; it is exported so
// that a program with its own server can mount it.
func (c *Consumer) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) {
		// A stalled partition does not fail the probe: a restart would not
		// fix the record or the dead-letter topic, and would stop the
		// healthy partitions too. It is listed so that a person sees it.
		_, _ = w.Write([]byte("ok\n"))
		for _, sp := range c.Stats().Stalled {
			_, _ = fmt.Fprintf(w, "stalled %s/%d at offset %d: %s\n", sp.Topic, sp.Partition, sp.Offset, sp.Err)
		}
	})
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, _ *http.Request) {
		if !c.ready.Load() {
			http.Error(w, "not ready: not in the consumer group\n", http.StatusServiceUnavailable)
			return
		}
		_, _ = w.Write([]byte("ok\n"))
	})
	mux.Handle("/metrics", promhttp.HandlerFor(c.gatherer, promhttp.HandlerOpts{}))
	return mux
}
