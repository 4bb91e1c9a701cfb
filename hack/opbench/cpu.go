package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"
)

// clockTicks is USER_HZ, the unit of /proc/<pid>/stat's CPU times; it is
// 100 on every Linux this runs on.
const clockTicks = 100

// cpuSample is the CPU time each process of interest has used so far:
// the API server, etcd, this bench (with its kfake brokers) and each
// manager, by name.
type cpuSample struct {
	at   time.Time
	used map[string]time.Duration
}

// sampleCPU reads the CPU times of the processes of the bench from /proc.
func (b *bench) sampleCPU() cpuSample {
	s := cpuSample{at: time.Now(), used: map[string]time.Duration{}}
	names := map[int]string{os.Getpid(): "opbench+kfake"}
	for _, m := range b.managers {
		if !m.exited() {
			names[m.pid] = m.name
		}
	}
	dirs, _ := filepath.Glob("/proc/[0-9]*")
	for _, d := range dirs {
		pid, err := strconv.Atoi(filepath.Base(d))
		if err != nil {
			continue
		}
		comm, err := os.ReadFile(filepath.Join(d, "comm"))
		if err != nil {
			continue
		}
		switch c := strings.TrimSpace(string(comm)); c {
		case "kube-apiserver", "etcd":
			names[pid] = c
		}
	}
	for pid, name := range names {
		if t, ok := cpuTime(pid); ok {
			s.used[name] += t
		}
	}
	return s
}

// cpuTime is utime+stime of pid.
func cpuTime(pid int) (time.Duration, bool) {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, false
	}
	// The command name may hold spaces: the fields follow its ')'.
	i := strings.LastIndexByte(string(raw), ')')
	if i < 0 {
		return 0, false
	}
	f := strings.Fields(string(raw[i+1:]))
	if len(f) < 13 {
		return 0, false
	}
	u, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, false
	}
	return time.Duration(u+st) * time.Second / clockTicks, true
}

// cpuLine says what share of a core each process used between from and to.
func cpuLine(from, to cpuSample) string {
	wall := to.at.Sub(from.at).Seconds()
	var names []string
	for n := range to.used {
		if _, ok := from.used[n]; ok {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	var parts []string
	for _, n := range names {
		parts = append(parts, fmt.Sprintf("%s %.0f%%", n, 100*(to.used[n]-from.used[n]).Seconds()/wall))
	}
	return fmt.Sprintf("CPU over %.1f s, in %% of one core: %s", wall, strings.Join(parts, ", "))
}

// apiLatency is the API server's count and total time of requests, by
// "resource/subresource VERB", from apiserver_request_duration_seconds.
type apiLatency struct{ count, sum map[string]float64 }

func (b *bench) readAPILatency() (apiLatency, error) {
	l := apiLatency{count: map[string]float64{}, sum: map[string]float64{}}
	raw, err := b.cs.RESTClient().Get().AbsPath("/metrics").DoRaw(context.Background())
	if err != nil {
		return l, fmt.Errorf("API server metrics: %w", err)
	}
	for _, suffix := range []string{"_sum", "_count"} {
		for _, s := range samples(string(raw), "apiserver_request_duration_seconds"+suffix) {
			key := s.labels["resource"]
			if sub := s.labels["subresource"]; sub != "" {
				key += "/" + sub
			}
			key += " " + s.labels["verb"]
			l.add(suffix, key, s.value)
		}
		// Where a request's time goes besides its handler: the wait for a
		// seat in API Priority and Fairness, and etcd.
		for _, s := range samples(string(raw), "apiserver_flowcontrol_request_wait_duration_seconds"+suffix) {
			l.add(suffix, "wait for a seat ("+s.labels["priority_level"]+")", s.value)
		}
		for _, s := range samples(string(raw), "etcd_request_duration_seconds"+suffix) {
			// The object kind is "resource" in newer API servers,
			// "type" in older ones; the runs here printed an empty type.
			kind := s.labels["resource"]
			if kind == "" {
				kind = s.labels["type"]
			}
			l.add(suffix, "etcd "+s.labels["operation"]+" "+kind, s.value)
		}
	}
	return l, nil
}

func (l apiLatency) add(suffix, key string, v float64) {
	if suffix == "_sum" {
		l.sum[key] += v
	} else {
		l.count[key] += v
	}
}

// latencyLine gives the busiest request kinds between from and to, with
// their mean time in the API server.
func latencyLine(from, to apiLatency) string {
	type kind struct {
		key       string
		n, meanMs float64
	}
	var ks []kind
	for k, c := range to.count {
		n := c - from.count[k]
		if n < 10 {
			continue
		}
		ks = append(ks, kind{k, n, 1000 * (to.sum[k] - from.sum[k]) / n})
	}
	sort.Slice(ks, func(i, j int) bool { return ks[i].n > ks[j].n })
	var parts []string
	for i, k := range ks {
		if i == 14 {
			break
		}
		parts = append(parts, fmt.Sprintf("%s %.0f (mean %.0f ms)", k.key, k.n, k.meanMs))
	}
	return strings.Join(parts, ", ")
}

// queuesLine gives, from one manager's metrics between two scrapes, the
// reconciles of its sharder (on the elected replica only) and of its
// EventConsumer controller: how many, their mean time and their mean wait
// in the queue. client-go's per-request latency and rate-limiter
// histograms read empty on the managers' /metrics, so the time a request
// spends in the client is not shown.
func queuesLine(before, after string) string {
	mean := func(name string, match func(map[string]string) bool) (float64, float64) {
		var n, sum float64
		for _, body := range []struct {
			text string
			sign float64
		}{{before, -1}, {after, 1}} {
			for _, s := range samples(body.text, name+"_count") {
				if match(s.labels) {
					n += body.sign * s.value
				}
			}
			for _, s := range samples(body.text, name+"_sum") {
				if match(s.labels) {
					sum += body.sign * s.value
				}
			}
		}
		if n <= 0 {
			return 0, 0
		}
		return n, 1000 * sum / n
	}
	sharder := func(l map[string]string) bool { return l["controller"] == "sharder" || l["name"] == "sharder" }
	owner := func(l map[string]string) bool {
		return l["controller"] == "eventconsumer" || l["name"] == "eventconsumer"
	}
	en, et := mean("controller_runtime_reconcile_time_seconds", owner)
	eqn, eqt := mean("workqueue_queue_duration_seconds", owner)
	rn, rt := mean("controller_runtime_reconcile_time_seconds", sharder)
	qn, qt := mean("workqueue_queue_duration_seconds", sharder)
	return fmt.Sprintf("sharder reconciles %.0f (mean %.1f ms), queue wait %.0f (mean %.1f ms); EventConsumer reconciles %.0f (mean %.1f ms), queue wait %.0f (mean %.1f ms)", rn, rt, qn, qt, en, et, eqn, eqt)
}
