// Command opbench measures what the operator costs the API server and
// itself at scale, against the real kube-apiserver (internal/testenv) and a
// kfake broker: requests per lag-poll cycle, status writes per second (from
// the API server's own apiserver_request_total), reconcile queue latency
// (controller-runtime's workqueue metrics) and the manager's RSS, with lag
// standing still and with lag moving; then the RSS growth when 3,000
// unrelated 6 KB Secrets and 1,000 unrelated Deployments appear in another
// namespace.
//
// It runs a manager binary as its own process, so that RSS is the
// manager's alone: `make bench-operator` builds bin/manager and runs it;
// pass -manager to measure another build (an older commit, for a before
// and after).
package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/lagscale/lagscale/api/v1alpha1"
	"github.com/lagscale/lagscale/internal/testenv"
)

func main() {
	manager := flag.String("manager", "bin/manager", "manager binary to measure")
	consumers := flag.Int("consumers", 1000, "EventConsumers to create")
	window := flag.Duration("window", 60*time.Second, "measurement window per phase")
	poll := flag.Duration("poll", 5*time.Second, "lag poll interval (--default-poll-interval)")
	noise := flag.Bool("noise", true, "also measure RSS growth with unrelated Secrets and Deployments")
	flag.Parse()
	if err := run(*manager, *consumers, *window, *poll, *noise); err != nil {
		fmt.Fprintln(os.Stderr, "opbench:", err)
		os.Exit(1)
	}
}

func run(manager string, n int, window, poll time.Duration, noise bool) error {
	if _, err := os.Stat(manager); err != nil {
		return fmt.Errorf("manager binary %s: %w: build it with `make build`", manager, err)
	}
	env, err := testenv.Start()
	if err != nil {
		return err
	}
	defer func() { _ = env.Stop() }()
	kf, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(8, "orders"))
	if err != nil {
		return err
	}
	defer kf.Close()
	dir, err := os.MkdirTemp("", "opbench")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	m, err := startManager(manager, env, dir, poll)
	if err != nil {
		return err
	}
	defer m.stop()

	ctx := context.Background()
	b := &bench{c: env.Client, metricsAddr: m.metricsAddr, pid: m.pid, window: window, poll: poll}
	if b.cs, err = kubernetes.NewForConfig(env.Admin); err != nil {
		return err
	}
	if b.token, err = prepareCluster(ctx, env); err != nil {
		return err
	}
	time.Sleep(3 * time.Second)
	rssIdle := rss(m.pid)

	start := time.Now()
	broker := kf.ListenAddrs()
	if err := createConsumers(ctx, env.Client, n, broker); err != nil {
		return err
	}
	if err := waitReconciled(ctx, env.Client, n, start, m.log); err != nil {
		return err
	}
	fmt.Printf("consumers=%d poll=%s window=%s manager=%s\n", n, poll, window, manager)
	fmt.Printf("all reconciled with a lag reading after %s; manager RSS %.1f MiB before any consumer\n", time.Since(start).Round(time.Second), rssIdle)
	time.Sleep(2 * poll)

	if err := b.phase("lag unchanged"); err != nil {
		return err
	}
	// Lag moves: a steady inflow on every partition the groups consume.
	stopProd := produceSteadily(ctx, broker)
	time.Sleep(2 * poll)
	err = b.phase("lag moving")
	stopProd()
	if err != nil {
		return err
	}
	if !noise {
		return nil
	}
	return b.noiseGrowth(ctx)
}

// managerProc is the manager under measurement, run as its own process so
// that its RSS is its alone.
type managerProc struct {
	cmd         *exec.Cmd
	pid         int
	metricsAddr string
	log         string
}

// startManager runs the manager against env's API server, with its log in
// dir/manager.log.
func startManager(manager string, env *testenv.Env, dir string, poll time.Duration) (*managerProc, error) {
	kubeconfig := filepath.Join(dir, "kubeconfig")
	if err := env.WriteKubeconfig(kubeconfig); err != nil {
		return nil, err
	}
	metricsAddr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	probeAddr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	logf, err := os.Create(filepath.Join(dir, "manager.log"))
	if err != nil {
		return nil, err
	}
	// The child has its own descriptor once started.
	defer logf.Close()
	cmd := exec.Command(manager, "--leader-elect=false", "--metrics-bind-address", metricsAddr,
		"--health-probe-bind-address", probeAddr, "--default-poll-interval", poll.String(), "--log-level", "error")
	cmd.Env = append(os.Environ(), "KUBECONFIG="+kubeconfig)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	return &managerProc{cmd: cmd, pid: cmd.Process.Pid, metricsAddr: metricsAddr, log: logf.Name()}, nil
}

// stop stops the manager by its PID, also when a step failed.
func (m *managerProc) stop() {
	_ = m.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { _ = m.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		_ = m.cmd.Process.Kill()
		<-done
	}
}

// prepareCluster creates the bench and noise namespaces and returns a
// token to scrape the manager's metrics with. The manager serves them
// securely, as the chart does: the benchmark scrapes them as Prometheus
// would, with a ServiceAccount token bound to a metrics-reader
// ClusterRole.
func prepareCluster(ctx context.Context, env *testenv.Env) (string, error) {
	for _, ns := range []string{"bench", "noise"} {
		if err := env.Client.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
			return "", err
		}
	}
	if err := env.EnsureClusterRole(ctx, "opbench-metrics-reader", testenv.MetricsReaderRules); err != nil {
		return "", err
	}
	return env.ServiceAccountToken(ctx, "noise", "opbench-scraper", "opbench-metrics-reader")
}

// createConsumers creates n EventConsumers of topic orders, each with its
// own group.
func createConsumers(ctx context.Context, c client.Client, n int, broker []string) error {
	return parallel(n, func(i int) error {
		return c.Create(ctx, &v1alpha1.EventConsumer{
			ObjectMeta: metav1.ObjectMeta{Namespace: "bench", Name: fmt.Sprintf("c%05d", i)},
			Spec: v1alpha1.EventConsumerSpec{
				Topics: []string{"orders"}, ConsumerGroup: fmt.Sprintf("g%05d", i),
				Kafka:   v1alpha1.KafkaConnection{BootstrapServers: broker},
				Handler: &v1alpha1.HandlerSpec{Image: "handler:1"},
			},
		})
	})
}

// waitReconciled waits until all n consumers are reconciled with a lag
// reading, for at most 20 minutes from start.
func waitReconciled(ctx context.Context, c client.Client, n int, start time.Time, log string) error {
	for {
		list := &v1alpha1.EventConsumerList{}
		if err := c.List(ctx, list, client.InNamespace("bench")); err != nil {
			return err
		}
		ready := 0
		for _, ec := range list.Items {
			if ec.Status.ObservedGeneration == ec.Generation && ec.Status.Lag != nil {
				ready++
			}
		}
		if ready == n {
			return nil
		}
		if time.Since(start) > 20*time.Minute {
			return fmt.Errorf("only %d of %d consumers reconciled with a lag reading after %s; see %s", ready, n, time.Since(start), log)
		}
		time.Sleep(5 * time.Second)
	}
}

// produceSteadily produces 100 records a second to orders until the
// returned function is called, which waits for the producer to stop.
func produceSteadily(ctx context.Context, broker []string) (stop func()) {
	prodCtx, stopProd := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		cl, err := kgo.NewClient(kgo.SeedBrokers(broker...), kgo.DefaultProduceTopic("orders"))
		if err != nil {
			return
		}
		defer cl.Close()
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-prodCtx.Done():
				return
			case <-t.C:
				for range 10 {
					cl.Produce(prodCtx, &kgo.Record{Value: []byte("x")}, nil)
				}
			}
		}
	}()
	return func() { stopProd(); wg.Wait() }
}

// bench measures the running manager through the API server's and its own
// metrics.
type bench struct {
	c           client.Client
	cs          *kubernetes.Clientset
	metricsAddr string
	token       string
	pid         int
	window      time.Duration
	poll        time.Duration
}

// phase measures one window and prints its line: status writes, API and
// Kafka requests per poll cycle, reconciles, queue latency and RSS.
func (b *bench) phase(name string) error {
	before, err := snapshot(b.cs, b.metricsAddr, b.token)
	if err != nil {
		return err
	}
	time.Sleep(b.window)
	after, err := snapshot(b.cs, b.metricsAddr, b.token)
	if err != nil {
		return err
	}
	secs := b.window.Seconds()
	cycles := secs / b.poll.Seconds()
	statusWrites := after.api["eventconsumers/status PATCH"] + after.api["eventconsumers/status PUT"] - before.api["eventconsumers/status PATCH"] - before.api["eventconsumers/status PUT"]
	var apiAll float64
	for k, v := range after.api {
		if strings.HasSuffix(k, " WATCH") {
			continue
		}
		apiAll += v - before.api[k]
	}
	qCount := after.queueCount - before.queueCount
	qLat := 0.0
	if qCount > 0 {
		qLat = (after.queueSum - before.queueSum) / qCount
	}
	fmt.Printf("%-14s status writes/s %7.2f | API requests/cycle %8.1f | Kafka requests/cycle %6.1f | reconciles/s %7.1f | queue latency avg %6.1f ms | RSS %6.1f MiB\n",
		name, statusWrites/secs, apiAll/cycles, (after.kafka-before.kafka)/cycles, qCount/secs, qLat*1000, rss(b.pid))
	return nil
}

// noiseGrowth prints the manager's RSS growth when 3,000 unrelated 6 KB
// Secrets and 1,000 unrelated Deployments appear in another namespace.
func (b *bench) noiseGrowth(ctx context.Context) error {
	before := rss(b.pid)
	value := []byte(strings.Repeat("s", 6*1024))
	if err := parallel(3000, func(i int) error {
		return b.c.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "noise", Name: fmt.Sprintf("s%04d", i)}, Data: map[string][]byte{"blob": value}})
	}); err != nil {
		return err
	}
	if err := parallel(1000, func(i int) error {
		labels := map[string]string{"app": fmt.Sprintf("d%04d", i)}
		return b.c.Create(ctx, &appsv1.Deployment{
			ObjectMeta: metav1.ObjectMeta{Namespace: "noise", Name: fmt.Sprintf("d%04d", i), Labels: labels},
			Spec: appsv1.DeploymentSpec{Replicas: ptr.To[int32](1), Selector: &metav1.LabelSelector{MatchLabels: labels},
				Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels},
					Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "registry.example/app:1", Env: []corev1.EnvVar{{Name: "A", Value: "b"}}}}}}},
		})
	}); err != nil {
		return err
	}
	time.Sleep(b.window)
	after := rss(b.pid)
	fmt.Printf("unrelated 3,000 x 6 KB Secrets + 1,000 Deployments: RSS %.1f -> %.1f MiB (growth %.1f MiB)\n", before, after, after-before)
	return nil
}

// parallel runs f for 0..n-1 on 16 goroutines and returns the first error.
func parallel(n int, f func(int) error) error {
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		first error
	)
	next := make(chan int)
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				if err := f(i); err != nil {
					mu.Lock()
					if first == nil {
						first = err
					}
					mu.Unlock()
				}
			}
		}()
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
	return first
}

type metrics struct {
	api                  map[string]float64 // "resource/subresource VERB" -> count
	kafka                float64
	queueSum, queueCount float64
}

// snapshot reads the API server's and the manager's counters.
func snapshot(cs *kubernetes.Clientset, managerAddr, token string) (metrics, error) {
	m := metrics{api: map[string]float64{}}
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
	code, body, err := testenv.ScrapeMetrics(managerAddr, token)
	if err == nil && code != http.StatusOK {
		err = fmt.Errorf("answered %d: %s", code, body)
	}
	if err != nil {
		return m, fmt.Errorf("manager metrics: %w", err)
	}
	for _, s := range samples(body, "lagscale_kafka_requests_total") {
		m.kafka += s.value
	}
	for _, s := range samples(body, "workqueue_queue_duration_seconds_sum") {
		if s.labels["name"] == "eventconsumer" {
			m.queueSum += s.value
		}
	}
	for _, s := range samples(body, "workqueue_queue_duration_seconds_count") {
		if s.labels["name"] == "eventconsumer" {
			m.queueCount += s.value
		}
	}
	return m, nil
}

type sample struct {
	labels map[string]string
	value  float64
}

// samples parses the Prometheus text format lines of one metric name.
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

func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}
