package handler

import (
	"net/http"
	"sync"
	"time"

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
	latency       *latencyHistogram
	inFlight      prometheus.GaugeFunc
	owned         prometheus.Gauge
	stalled       prometheus.Gauge

	// handledByTopic caches the handled counter of each configured topic:
	// workers add to it after every chunk of records.
	handledByTopic map[string]prometheus.Counter
}

func (m *metrics) handledFor(topic string) prometheus.Counter {
	if c, ok := m.handledByTopic[topic]; ok {
		return c
	}
	return m.handled.WithLabelValues(topic)
}

func newMetrics(reg prometheus.Registerer, private bool, topics []string, inFlight func() float64) (*metrics, error) {
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
		latency: newLatencyHistogram(prometheus.NewDesc(
			"lagscale_handler_handling_seconds",
			"Time one call of the handler function took.",
			nil, nil,
		), prometheus.ExponentialBuckets(0.0005, 2, 16)),
		inFlight: prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "lagscale_handler_in_flight_records",
			Help: "Records being handled right now (at most one per partition).",
		}, inFlight),
		owned: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "lagscale_handler_partitions_owned",
			Help: "Partitions assigned to this member.",
		}),
		stalled: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "lagscale_handler_partitions_stalled",
			Help: "Owned partitions stopped at a record that failed every attempt with no dead-letter topic configured.",
		}),
	}
	m.handledByTopic = make(map[string]prometheus.Counter, len(topics))
	for _, t := range topics {
		m.handledByTopic[t] = m.handled.WithLabelValues(t)
	}
	cs := []prometheus.Collector{m.handled, m.failed, m.deadLettered, m.attemptErrors, m.commitErrors, m.latency, m.inFlight, m.owned, m.stalled}
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

// latencyHistogram is a Prometheus histogram that workers fill in batches:
// each worker counts its observations in a localLatency and merges them
// after a chunk of records, so that a fast handler does not pay for shared
// atomic updates on every record. Scrapes see every observation once its
// chunk is done.
type latencyHistogram struct {
	desc   *prometheus.Desc
	bounds []float64

	mu     sync.Mutex
	counts []uint64 // per bucket, not cumulative; the last is +Inf
	sum    float64
	count  uint64
}

func newLatencyHistogram(desc *prometheus.Desc, bounds []float64) *latencyHistogram {
	return &latencyHistogram{desc: desc, bounds: bounds, counts: make([]uint64, len(bounds)+1)}
}

// Observe records one observation at once, for the rare paths (retries).
func (h *latencyHistogram) Observe(seconds float64) {
	l := h.local()
	l.observe(time.Duration(seconds * float64(time.Second)))
	l.flush()
}

func (h *latencyHistogram) local() localLatency {
	return localLatency{h: h, counts: make([]uint64, len(h.bounds)+1)}
}

func (h *latencyHistogram) Describe(ch chan<- *prometheus.Desc) { ch <- h.desc }

func (h *latencyHistogram) Collect(ch chan<- prometheus.Metric) {
	h.mu.Lock()
	buckets := make(map[float64]uint64, len(h.bounds))
	var cum uint64
	for i, b := range h.bounds {
		cum += h.counts[i]
		buckets[b] = cum
	}
	count, sum := h.count, h.sum
	h.mu.Unlock()
	ch <- prometheus.MustNewConstHistogram(h.desc, count, sum, buckets)
}

// localLatency collects one worker's observations until flush.
type localLatency struct {
	h      *latencyHistogram
	counts []uint64
	sum    float64
	n      uint64
}

func (l *localLatency) observe(d time.Duration) {
	s := d.Seconds()
	// Buckets are few and most calls land in the lowest ones: a linear
	// scan beats a binary search here.
	i := 0
	for i < len(l.h.bounds) && s > l.h.bounds[i] {
		i++
	}
	l.counts[i]++
	l.sum += s
	l.n++
	// Slow calls flush at once (the lock costs nothing next to them), so
	// that a slow handler's histogram does not wait for a whole chunk.
	if s >= 0.001 || l.n >= 256 {
		l.flush()
	}
}

// observeFast records n calls that took total together, where total is
// below the first bucket's bound: each of them did, so the bucket counts
// and the sum stay exact.
func (l *localLatency) observeFast(total time.Duration, n int) {
	l.counts[0] += uint64(n)
	l.sum += total.Seconds()
	l.n += uint64(n)
	if l.n >= 256 {
		l.flush()
	}
}

func (l *localLatency) flush() {
	if l.n == 0 {
		return
	}
	h := l.h
	h.mu.Lock()
	for i, n := range l.counts {
		h.counts[i] += n
	}
	h.sum += l.sum
	h.count += l.n
	h.mu.Unlock()
	clear(l.counts)
	l.sum, l.n = 0, 0
}

// callClock times the calls of one chunk for the latency histogram while
// reading the clock as rarely as it can without blurring the histogram.
//
// It reads the clock after a group of calls. While groups finish below the
// first bucket's bound every call in them is known to belong to the first
// bucket, so the group grows (up to maxCallGroup) and a fast handler pays
// for a clock read every few dozen records instead of every record. A call
// that reaches the first bound makes its group ambiguous: the calls before
// it are counted at the group's previous average, the rest of the time is
// given to the last call, and the clock goes back to reading after every
// call.
type callClock struct {
	lat     *localLatency
	start   time.Time
	prev    time.Duration // elapsed at the last read
	group   int           // calls per read
	pending int           // calls since the last read
	avg     time.Duration // per call in the last unambiguous group
}

const maxCallGroup = 64

func newCallClock(lat *localLatency) callClock {
	return callClock{lat: lat, start: time.Now(), group: 1}
}

// tick counts one finished call.
func (k *callClock) tick() {
	if k.pending++; k.pending >= k.group {
		k.flush()
	}
}

// flush reads the clock and records the calls since the last read.
func (k *callClock) flush() {
	if k.pending == 0 {
		return
	}
	now := time.Since(k.start)
	d := now - k.prev
	n := k.pending
	k.prev, k.pending = now, 0
	first := time.Duration(k.lat.h.bounds[0] * float64(time.Second))
	switch {
	case d < first:
		k.lat.observeFast(d, n)
		k.avg = d / time.Duration(n)
		if d < first/8 && k.group < maxCallGroup {
			k.group *= 2
		} else if d >= first/2 && k.group > 1 {
			k.group /= 2
		}
	case n == 1:
		k.lat.observe(d)
	default:
		before := min(k.avg*time.Duration(n-1), d/2)
		k.lat.observeFast(before, n-1)
		k.lat.observe(d - before)
		k.group = 1
	}
}

// Handler returns the HTTP handler that serves /healthz, /readyz and
// /metrics. Run serves it on the configured address; it is exported so
// that a program with its own server can mount it.
func (c *Consumer) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) {
		_, _ = w.Write([]byte("ok\n"))
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
