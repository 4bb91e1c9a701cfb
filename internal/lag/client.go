package lag

import (
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/lagscale/lagscale/internal/promutil"
	"github.com/lagscale/lagscale/pkg/contract"
)

// metrics are the engine's Prometheus collectors.
type metrics struct {
	requests     *prometheus.CounterVec
	errors       *prometheus.CounterVec
	respErrors   *prometheus.CounterVec
	pollDuration *prometheus.HistogramVec
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "lagscale_kafka_requests_total",
			Help: "Kafka requests sent by the lag engine, by cluster and API.",
		}, []string{"cluster", "api"}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "lagscale_kafka_request_errors_total",
			Help: "Kafka requests of the lag engine that failed on the wire, by cluster and API.",
		}, []string{"cluster", "api"}),
		respErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "lagscale_kafka_response_errors_total",
			Help: "Error codes inside Kafka responses to the lag engine (one per topic, partition or group that carried one), by cluster, API and Kafka error name.",
		}, []string{"cluster", "api", "error"}),
		pollDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "lagscale_lag_poll_duration_seconds",
			Help:    "Duration of one lag poll cycle of a Kafka cluster.",
			Buckets: prometheus.ExponentialBuckets(0.005, 2, 12),
		}, []string{"cluster"}),
	}
	m.requests = promutil.Register(reg, m.requests)
	m.errors = promutil.Register(reg, m.errors)
	m.respErrors = promutil.Register(reg, m.respErrors)
	m.pollDuration = promutil.Register(reg, m.pollDuration)
	return m
}

func (m *metrics) forget(cluster string) {
	m.requests.DeletePartialMatch(prometheus.Labels{"cluster": cluster})
	m.errors.DeletePartialMatch(prometheus.Labels{"cluster": cluster})
	m.respErrors.DeletePartialMatch(prometheus.Labels{"cluster": cluster})
	m.pollDuration.DeletePartialMatch(prometheus.Labels{"cluster": cluster})
}

// requestHook counts every request a cluster's client writes, for the
// Prometheus counters and for the per-cycle request count.
type requestHook struct {
	cluster string
	m       *metrics
	byKey   [maxKey]atomic.Int64
	// authFailures counts failed SASL round trips, so a cycle can tell an
	// authentication failure from an unreachable broker even when the
	// broker just closes the connection.
	authFailures atomic.Int64
}

// Kafka API keys of the SASL exchange.
const (
	saslHandshakeKey    = 17
	saslAuthenticateKey = 36
)

// maxKey bounds the Kafka API keys we count individually.
const maxKey = 128

var _ kgo.HookBrokerE2E = (*requestHook)(nil)

// OnBrokerE2E implements kgo.HookBrokerE2E; it runs once per request.
func (h *requestHook) OnBrokerE2E(_ kgo.BrokerMetadata, key int16, e2e kgo.BrokerE2E) {
	if key >= 0 && int(key) < maxKey {
		h.byKey[key].Add(1)
	}
	api := kmsg.NameForKey(key)
	h.m.requests.WithLabelValues(h.cluster, api).Inc()
	if e2e.Err() != nil {
		if key == saslHandshakeKey || key == saslAuthenticateKey {
			h.authFailures.Add(1)
		}
		h.m.errors.WithLabelValues(h.cluster, api).Inc()
	}
}

// clientOptions builds the franz-go options for a cluster: the connection
// the handler SDK uses too (pkg/contract), plus the lag engine's client ID
// and timeouts. Errors name what is wrong with the configuration and never
// contain key material or passwords.
func clientOptions(cfg ClusterConfig, timeout time.Duration) ([]kgo.Opt, error) {
	opts, err := contract.Connection{BootstrapServers: cfg.BootstrapServers, TLS: cfg.TLS, SASL: cfg.SASL}.Options()
	if err != nil {
		return nil, err
	}
	return append(opts,
		kgo.ClientID("lagscale-lag"),
		kgo.DialTimeout(min(timeout, 10*time.Second)),
		kgo.RetryTimeout(timeout),
		kgo.RequestRetries(2),
	), nil
}

// redact returns err's text with every secret replaced, as a last line of
// defence: the errors we build never include credentials, but a broker's
// error message is outside our control.
func redact(err error, cfg ClusterConfig) string {
	if err == nil {
		return ""
	}
	msg := err.Error()
	if cfg.SASL != nil && cfg.SASL.Password != "" {
		msg = strings.ReplaceAll(msg, cfg.SASL.Password, "[redacted]")
	}
	return msg
}

// snapshotByKey returns the per-key request counts so far.
func (h *requestHook) snapshotByKey() [maxKey]int64 {
	var out [maxKey]int64
	for i := range out {
		out[i] = h.byKey[i].Load()
	}
	return out
}

// diff returns the requests sent since before, by API name, and their total.
func (h *requestHook) diff(before [maxKey]int64) (map[string]int, int) {
	out := make(map[string]int)
	total := 0
	for i := range before {
		n := int(h.byKey[i].Load() - before[i])
		if n > 0 {
			out[kmsg.NameForKey(int16(i))] = n
			total += n
		}
	}
	return out, total
}
