package main

import (
	"bufio"
	"context"
	"fmt"
	"math"
	"net/http"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	"k8s.io/client-go/kubernetes"

	"github.com/lagscale/lagscale/internal/testenv"
)

// metrics are the counters one snapshot reads: the API server's requests
// and, summed over the managers measured, their Kafka requests and two
// histograms.
type metrics struct {
	api    map[string]float64 // "resource/subresource VERB" -> count
	kafka  float64
	writes map[string]float64 // lagscale_status_writes_total by kind
	// apiAt and managersAt are when the API server's and the managers'
	// metrics were read: a manager's /metrics at 10,000 consumers takes
	// seconds to scrape, so a window's rates divide by the time between
	// the reads, not by the time slept.
	apiAt, managersAt time.Time
	queue             histogram // the EventConsumer work queue's wait
	decision          histogram // lagscale_decision_latency_seconds
	cycle             histogram // lagscale_lag_poll_duration_seconds
}

// histogram is a Prometheus histogram's cumulative buckets, sum and count.
type histogram struct {
	buckets    map[float64]float64 // upper bound -> cumulative count
	sum, count float64
}

func (h *histogram) add(name string, s sample) {
	switch {
	case strings.HasSuffix(name, "_bucket"):
		le, err := strconv.ParseFloat(s.labels["le"], 64)
		if s.labels["le"] == "+Inf" {
			le, err = math.Inf(1), nil
		}
		if err != nil {
			return
		}
		if h.buckets == nil {
			h.buckets = map[float64]float64{}
		}
		h.buckets[le] += s.value
	case strings.HasSuffix(name, "_sum"):
		h.sum += s.value
	case strings.HasSuffix(name, "_count"):
		h.count += s.value
	}
}

// since is the histogram of what was observed between before and h.
func (h histogram) since(before histogram) histogram {
	d := histogram{buckets: map[float64]float64{}, sum: h.sum - before.sum, count: h.count - before.count}
	for le, v := range h.buckets {
		d.buckets[le] = v - before.buckets[le]
	}
	return d
}

// quantile estimates the q-quantile by linear interpolation within the
// bucket that holds it, as Prometheus's histogram_quantile does; NaN with
// no observation. A quantile in the +Inf bucket is reported as the
// largest finite bound (a lower bound of the truth).
func (h histogram) quantile(q float64) float64 {
	if h.count <= 0 {
		return math.NaN()
	}
	bounds := make([]float64, 0, len(h.buckets))
	for le := range h.buckets {
		bounds = append(bounds, le)
	}
	sort.Float64s(bounds)
	rank := q * h.count
	lower, prev := 0.0, 0.0
	for _, le := range bounds {
		c := h.buckets[le]
		if c >= rank {
			if math.IsInf(le, 1) {
				return lower
			}
			if c == prev {
				return le
			}
			return lower + (le-lower)*(rank-prev)/(c-prev)
		}
		lower, prev = le, c
	}
	return lower
}

func (h histogram) mean() float64 {
	if h.count <= 0 {
		return math.NaN()
	}
	return h.sum / h.count
}

// snapshot reads the API server's request counters and each manager's
// metrics, summed.
func snapshot(cs *kubernetes.Clientset, managers []*managerProc, token string) (metrics, error) {
	m := metrics{api: map[string]float64{}, writes: map[string]float64{}, apiAt: time.Now()}
	raw, err := cs.RESTClient().Get().AbsPath("/metrics").DoRaw(context.Background())
	if err != nil {
		return m, fmt.Errorf("API server metrics: %w", err)
	}
	for _, s := range samples(string(raw), "apiserver_request_total") {
		key := s.labels["resource"]
		if sub := s.labels["subresource"]; sub != "" {
			key += "/" + sub
		}
		m.api[key+" "+s.labels["verb"]] += s.value
	}
	m.managersAt = time.Now()
	for _, mp := range managers {
		if mp.exited() {
			continue
		}
		body, err := scrape(mp, token)
		if err != nil {
			return m, err
		}
		for _, s := range samples(body, "lagscale_kafka_requests_total") {
			m.kafka += s.value
		}
		for _, s := range samples(body, "lagscale_status_writes_total") {
			m.writes[s.labels["kind"]] += s.value
		}
		for _, suffix := range []string{"_bucket", "_sum", "_count"} {
			for _, s := range samples(body, "workqueue_queue_duration_seconds"+suffix) {
				if s.labels["name"] == "eventconsumer" {
					m.queue.add(suffix, s)
				}
			}
			for _, s := range samples(body, "lagscale_decision_latency_seconds"+suffix) {
				m.decision.add(suffix, s)
			}
			for _, s := range samples(body, "lagscale_lag_poll_duration_seconds"+suffix) {
				m.cycle.add(suffix, s)
			}
		}
	}
	return m, nil
}

// scrape reads one manager's /metrics.
func scrape(mp *managerProc, token string) (string, error) {
	code, body, err := testenv.ScrapeMetrics(mp.metricsAddr, token)
	if err == nil && code != http.StatusOK {
		err = fmt.Errorf("answered %d: %s", code, body)
	}
	if err != nil {
		return "", fmt.Errorf("metrics of manager %s: %w", mp.name, err)
	}
	return body, nil
}

type sample struct {
	labels map[string]string
	value  float64
}

// samples parses the Prometheus text format lines of one metric name
// (exactly that name, with or without labels).
func samples(text, name string) []sample {
	var out []sample
	sc := bufio.NewScanner(strings.NewReader(text))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, name) {
			continue
		}
		rest := line[len(name):]
		s := sample{labels: map[string]string{}}
		if strings.HasPrefix(rest, "{") {
			end := strings.LastIndex(rest, "}")
			if end < 0 {
				continue
			}
			for _, kv := range splitLabels(rest[1:end]) {
				k, v, _ := strings.Cut(kv, "=")
				s.labels[k] = strings.Trim(v, `"`)
			}
			rest = rest[end+1:]
		} else if !strings.HasPrefix(rest, " ") {
			continue
		}
		f := strings.Fields(rest)
		if len(f) == 0 {
			continue
		}
		v, err := strconv.ParseFloat(f[0], 64)
		if err != nil {
			continue
		}
		s.value = v
		out = append(out, s)
	}
	return out
}

// splitLabels splits `a="x",b="y,z"` at the commas outside quotes.
func splitLabels(s string) []string {
	var out []string
	inQ, start := false, 0
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '"':
			if i == 0 || s[i-1] != '\\' {
				inQ = !inQ
			}
		case ',':
			if !inQ {
				out = append(out, s[start:i])
				start = i + 1
			}
		}
	}
	if start < len(s) {
		out = append(out, s[start:])
	}
	return out
}

// rss is the process's resident set in MiB, from /proc.
func rss(pid int) float64 {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return -1
	}
	for _, line := range strings.Split(string(raw), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmRSS:" {
			kb, _ := strconv.ParseFloat(f[1], 64)
			return kb / 1024
		}
	}
	return -1
}

// percentile is the nearest-rank p-th percentile of xs (sorted in place).
func percentile(xs []float64, p float64) float64 {
	if len(xs) == 0 {
		return math.NaN()
	}
	sort.Float64s(xs)
	i := int(math.Ceil(p/100*float64(len(xs)))) - 1
	return xs[max(0, min(i, len(xs)-1))]
}
