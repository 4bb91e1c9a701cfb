// Command opbench measures what the operator costs the API server and
// itself at scale, against the real kube-apiserver (internal/testenv) and a
// kfake cluster, on a topology like a large user's: topics of 8
// partitions on 3 brokers, 10 consumer groups per topic, one record per
// partition per second on every topic, and every group committing so that
// its lag moves on every partition and stays small. Beside them, probe
// consumers get a sudden backlog: the only ones whose lag asks for a
// scale-up.
//
// It reports, for the initial sync of every consumer applied at once, for
// lag moving and for lag standing still: status writes per second (from
// the API server's own apiserver_request_total), API requests and Kafka
// requests per 5 s poll cycle, decision latency (the manager's
// lagscale_decision_latency_seconds, from a snapshot to the Deployment
// write it caused, and the probes' time from the backlog's arrival to
// their Deployment's write, seen by a watch), reconcile queue latency
// (controller-runtime's workqueue metrics) and RSS. With -replicas > 1 it
// runs a sharded operator and adds each replica's share of the consumers
// and how long a killed replica's consumers take to be decided again by
// the others. With -noise, the RSS growth when 3,000 unrelated 6 KB
// Secrets and 1,000 unrelated Deployments appear in another namespace.
//
// Each manager is a process of its own, so that RSS is its alone: `make
// bench-operator` builds bin/manager and runs it; pass -manager to measure
// another build (an older commit, for a before and after).
package main

import (
	"context"
	"flag"
	"fmt"
	"math"
	"os"
	"strings"
	"sync"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/lagscale/lagscale/api/v1alpha1"
	"github.com/lagscale/lagscale/internal/memlimit"
	"github.com/lagscale/lagscale/internal/testenv"
)

type config struct {
	manager        string
	consumers      int
	groupsPerTopic int
	partitions     int
	brokers        int
	probes         int
	backlog        int
	replicas       int
	window         time.Duration
	poll           time.Duration
	syncLimit      time.Duration
	noise          bool
	heapProfile    string
	keepLogs       bool
	containerMem   string
	cpuProfile     string
	managerFlags   string
}

func main() {
	var c config
	flag.StringVar(&c.manager, "manager", "bin/manager", "manager binary to measure")
	flag.IntVar(&c.consumers, "consumers", 1000, "EventConsumers to create, besides the probes")
	flag.IntVar(&c.groupsPerTopic, "groups-per-topic", 10, "consumer groups (EventConsumers) per topic")
	flag.IntVar(&c.partitions, "partitions", 8, "partitions per topic")
	flag.IntVar(&c.brokers, "brokers", 3, "kfake brokers")
	flag.IntVar(&c.probes, "probes", 20, "probe consumers that get a sudden backlog")
	flag.IntVar(&c.backlog, "backlog", 1000, "records per partition of a probe's backlog")
	flag.IntVar(&c.replicas, "replicas", 1, "operator replicas; more than 1 runs them sharded")
	flag.DurationVar(&c.window, "window", 60*time.Second, "measurement window per phase")
	flag.DurationVar(&c.poll, "poll", 5*time.Second, "lag poll interval (--default-poll-interval)")
	flag.DurationVar(&c.syncLimit, "sync-limit", 20*time.Minute, "longest wait for every consumer's first status")
	flag.BoolVar(&c.noise, "noise", false, "also measure RSS growth with unrelated Secrets and Deployments")
	flag.StringVar(&c.containerMem, "container-memory", "", "run each manager as in a container with this memory limit (a quantity: 1Gi): its Go soft memory limit is set as the manager sets it from its cgroup (internal/memlimit); empty runs it without one")
	flag.StringVar(&c.cpuProfile, "cpu-profile", "", "write the first manager's CPU profile over the lag-moving window to this file")
	flag.BoolVar(&c.keepLogs, "keep-logs", false, "keep the managers' logs, at level info (without, error), and print where")
	flag.StringVar(&c.heapProfile, "heap-profile", "", "write the first manager's heap profile to this file at the end of the lag-moving window (read it with `go tool pprof`)")
	flag.StringVar(&c.managerFlags, "manager-flags", "", "more flags for every manager, space-separated (--max-concurrent-reconciles=8)")
	flag.Parse()
	if err := run(c); err != nil {
		fmt.Fprintln(os.Stderr, "opbench:", err)
		os.Exit(1)
	}
}

func run(c config) error {
	if _, err := os.Stat(c.manager); err != nil {
		return fmt.Errorf("manager binary %s: %w: build it with `make build`", c.manager, err)
	}
	env, err := testenv.Start()
	if err != nil {
		return err
	}
	defer func() { _ = env.Stop() }()
	topo, err := newTopology(c.consumers, c.groupsPerTopic, c.probes, c.brokers, int32(c.partitions))
	if err != nil {
		return err
	}
	defer topo.close()
	dir, err := os.MkdirTemp("", "opbench")
	if err != nil {
		return err
	}
	if c.keepLogs {
		fmt.Printf("managers' logs in %s (kept)\n", dir)
	} else {
		defer os.RemoveAll(dir)
	}

	// Kept logs are for reading: they say what each manager decided.
	logLevel := "error"
	if c.keepLogs {
		logLevel = "info"
	}
	var extraEnv []string
	if c.containerMem != "" {
		q, err := resource.ParseQuantity(c.containerMem)
		if err != nil {
			return fmt.Errorf("-container-memory: %w", err)
		}
		soft := memlimit.Soft(q.Value())
		extraEnv = append(extraEnv, fmt.Sprintf("GOMEMLIMIT=%d", soft))
		fmt.Printf("managers run as in a container of %s: GOMEMLIMIT=%d\n", c.containerMem, soft)
	}

	ctx := context.Background()
	b := &bench{c: env.Client, cfg: c}
	if b.cs, err = kubernetes.NewForConfig(env.Admin); err != nil {
		return err
	}
	if b.token, err = prepareCluster(ctx, env); err != nil {
		return err
	}
	for i := range c.replicas {
		m, err := startManager(c.manager, env, dir, fmt.Sprintf("m%d", i), c.poll, c.replicas > 1, c.heapProfile != "" || c.cpuProfile != "", logLevel, extraEnv, strings.Fields(c.managerFlags))
		if m != nil {
			defer m.stop()
		}
		if err != nil {
			return err
		}
		b.managers = append(b.managers, m)
	}
	// Lag moves from the start: the initial sync is measured under it.
	tr, err := topo.startTraffic(ctx, c.consumers, 10*time.Second)
	if err != nil {
		return err
	}
	defer tr.close()
	b.tr = tr
	time.Sleep(3 * time.Second)
	fmt.Printf("consumers=%d (+%d probes) topics=%d x %d partitions on %d brokers, %d groups per topic, replicas=%d poll=%s window=%s manager=%s\n",
		c.consumers, c.probes, len(topo.topics), c.partitions, c.brokers, c.groupsPerTopic, c.replicas, c.poll, c.window, c.manager)
	fmt.Printf("manager RSS before any consumer: %s\n", b.rssLine())

	if err := b.initialSync(ctx, topo); err != nil {
		return err
	}
	if err := b.movingWithProbes(ctx); err != nil {
		return err
	}
	if c.heapProfile != "" {
		if err := b.managers[0].heapProfile(c.heapProfile); err != nil {
			return err
		}
		fmt.Printf("heap profile of %s: %s\n", b.managers[0], c.heapProfile)
	}
	tr.halt()
	if err := tr.catchUp(ctx); err != nil {
		return fmt.Errorf("commit every group at the end: %w", err)
	}
	if err := b.standingStill(); err != nil {
		return err
	}
	if c.replicas > 1 {
		stop, err := b.watchLabels(ctx, env)
		if err != nil {
			return err
		}
		defer stop()
		if err := b.killOne(ctx, false); err != nil {
			return err
		}
		if c.replicas > 2 {
			if err := b.killOne(ctx, true); err != nil {
				return err
			}
		}
	}
	if c.noise {
		return b.noiseGrowth(ctx)
	}
	return nil
}

// bench measures the running managers through the API server's and their
// own metrics.
type bench struct {
	c        client.Client
	cs       *kubernetes.Clientset
	cfg      config
	token    string
	managers []*managerProc
	tr       *traffic
	// shardLabels holds every consumer's metadata from a watch, for the
	// kills' second-by-second counts.
	shardLabels cache.Cache
}

// prepareCluster creates the namespaces and returns a token to scrape the
// managers' metrics with. They serve them securely, as the chart does: the
// bench scrapes them as Prometheus would, with a ServiceAccount token
// bound to a metrics-reader ClusterRole.
func prepareCluster(ctx context.Context, env *testenv.Env) (string, error) {
	for _, ns := range []string{"bench", "probes", "noise", shardNamespace} {
		err := env.Client.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}})
		if err != nil && !apierrors.IsAlreadyExists(err) {
			return "", err
		}
	}
	if err := env.EnsureClusterRole(ctx, "opbench-metrics-reader", testenv.MetricsReaderRules); err != nil {
		return "", err
	}
	return env.ServiceAccountToken(ctx, "noise", "opbench-scraper", "opbench-metrics-reader")
}

// initialSync applies every consumer at once and waits until each has a
// Deployment and a first lag status.
func (b *bench) initialSync(ctx context.Context, topo *topology) error {
	before, err := snapshot(b.cs, b.managers, b.token)
	if err != nil {
		return err
	}
	start := time.Now()
	if err := createConsumers(ctx, b.c, b.cfg.consumers, topo); err != nil {
		return err
	}
	if err := createProbes(ctx, b.c, topo); err != nil {
		return err
	}
	applied := time.Since(start)
	if err := b.waitSynced(ctx, start); err != nil {
		return err
	}
	took := time.Since(start)
	after, err := snapshot(b.cs, b.managers, b.token)
	if err != nil {
		return err
	}
	fmt.Printf("initial sync (lag moving): %d consumers applied in %s; every one has a Deployment and a lag status after %s; status writes/s %.1f; RSS %s\n",
		b.cfg.consumers+b.cfg.probes, applied.Round(time.Second), took.Round(time.Second), statusWrites(before, after)/took.Seconds(), b.rssLine())
	fmt.Printf("  status writes/s by kind (the managers' count): %s\n", writeKinds(before, after, took.Seconds()))
	time.Sleep(2 * b.cfg.poll)
	return nil
}

// createConsumers creates one EventConsumer per group in namespace bench.
func createConsumers(ctx context.Context, c client.Client, n int, topo *topology) error {
	return parallel(n, func(i int) error {
		return c.Create(ctx, &v1alpha1.EventConsumer{
			ObjectMeta: metav1.ObjectMeta{Namespace: "bench", Name: fmt.Sprintf("c%05d", i)},
			Spec: v1alpha1.EventConsumerSpec{
				Topics: []string{topo.groupTopic(i)}, ConsumerGroup: groupName(i),
				Kafka:   v1alpha1.KafkaConnection{BootstrapServers: topo.brokers},
				Handler: &v1alpha1.HandlerSpec{Image: "handler:1"},
			},
		})
	})
}

// createProbes creates the probe consumers in namespace probes. A probe
// says what one replica consumes, so the size its backlog asks for does
// not depend on a capacity the bench's pod-less groups cannot show.
func createProbes(ctx context.Context, c client.Client, topo *topology) error {
	return parallel(len(topo.probes), func(i int) error {
		return c.Create(ctx, &v1alpha1.EventConsumer{
			ObjectMeta: metav1.ObjectMeta{Namespace: "probes", Name: fmt.Sprintf("p%02d", i)},
			Spec: v1alpha1.EventConsumerSpec{
				Topics: []string{topo.probes[i]}, ConsumerGroup: probeGroup(i),
				Kafka:   v1alpha1.KafkaConnection{BootstrapServers: topo.brokers},
				Handler: &v1alpha1.HandlerSpec{Image: "handler:1"},
				Scaling: v1alpha1.ScalingSpec{ThroughputPerReplica: ptr.To[int64](100), MaxReplicas: ptr.To(int32(topo.partitions))},
			},
		})
	})
}

// waitSynced waits until every consumer has a Deployment and a lag status
// for its generation, for at most the sync limit from start.
func (b *bench) waitSynced(ctx context.Context, start time.Time) error {
	want := b.cfg.consumers + b.cfg.probes
	for {
		synced, err := b.countSynced(ctx)
		if err != nil {
			return err
		}
		if synced == want {
			return nil
		}
		if time.Since(start) > b.cfg.syncLimit {
			return fmt.Errorf("only %d of %d consumers have a Deployment and a lag status after %s; see the logs in %v", synced, want, time.Since(start).Round(time.Second), b.managers)
		}
		time.Sleep(5 * time.Second)
	}
}

func (b *bench) countSynced(ctx context.Context) (int, error) {
	deployments := map[string]bool{}
	synced := 0
	for _, ns := range []string{"bench", "probes"} {
		ds := &appsv1.DeploymentList{}
		if err := b.c.List(ctx, ds, client.InNamespace(ns)); err != nil {
			return 0, err
		}
		for _, d := range ds.Items {
			deployments[ns+"/"+d.Name] = true
		}
		list := &v1alpha1.EventConsumerList{}
		if err := b.c.List(ctx, list, client.InNamespace(ns)); err != nil {
			return 0, err
		}
		for _, ec := range list.Items {
			if ec.Status.ObservedGeneration == ec.Generation && ec.Status.Lag != nil && deployments[ns+"/"+ec.Name] {
				synced++
			}
		}
	}
	return synced, nil
}

// movingWithProbes measures a window with lag moving everywhere; a
// quarter into it every probe gets its backlog, and the time from each
// backlog's arrival to its Deployment's scale-up is taken from a watch.
func (b *bench) movingWithProbes(ctx context.Context) error {
	watchCtx, stopWatch := context.WithCancel(ctx)
	defer stopWatch()
	scaled, err := watchScaleUps(watchCtx, b.cs, "probes")
	if err != nil {
		return err
	}
	before, err := snapshot(b.cs, b.managers, b.token)
	if err != nil {
		return err
	}
	start := time.Now()
	commits := b.tr.commits.Load()
	profiled := make(chan error, 1)
	if b.cfg.cpuProfile != "" {
		go func() {
			secs := max(int((b.cfg.window - 5*time.Second).Seconds()), 1)
			profiled <- b.managers[0].profile(fmt.Sprintf("profile?seconds=%d", secs), b.cfg.cpuProfile)
		}()
	} else {
		profiled <- nil
	}
	time.Sleep(b.cfg.window / 4)
	arrived := make([]time.Time, b.cfg.probes)
	if err := parallel(b.cfg.probes, func(i int) error {
		if err := b.tr.backlog(ctx, i, b.cfg.backlog); err != nil {
			return err
		}
		arrived[i] = time.Now()
		return nil
	}); err != nil {
		return fmt.Errorf("produce the probes' backlog: %w", err)
	}
	time.Sleep(b.cfg.window - time.Since(start))
	after, err := snapshot(b.cs, b.managers, b.token)
	if err != nil {
		return err
	}
	b.printPhase("lag moving", before, after)
	if err := <-profiled; err != nil {
		return err
	}
	if b.cfg.cpuProfile != "" {
		fmt.Printf("CPU profile of %s over the window: %s\n", b.managers[0], b.cfg.cpuProfile)
	}
	// The topology holds only if every group commits at its cadence: a
	// committer that falls behind makes lag grow and stall, which the
	// operator rightly reports as state.
	want := float64(b.cfg.consumers) / b.tr.commitEvery.Seconds()
	fmt.Printf("  group commits/s %.0f of the %.0f the topology asks for\n", float64(b.tr.commits.Load()-commits)/time.Since(start).Seconds(), want)

	// The probes' scale-ups, waited for up to a minute past the window.
	deadline := time.Now().Add(time.Minute)
	var lat []float64
	missing := 0
	for i := range b.cfg.probes {
		at, ok := scaled.first(fmt.Sprintf("p%02d", i), deadline)
		if !ok {
			missing++
			continue
		}
		lat = append(lat, at.Sub(arrived[i]).Seconds())
	}
	fmt.Printf("probes: %d of %d scaled up; backlog arrival to Deployment write p50 %.1f s, p99 %.1f s, worst %.1f s\n",
		len(lat), b.cfg.probes, percentile(lat, 50), percentile(lat, 99), percentile(lat, 100))
	if missing > 0 {
		return fmt.Errorf("%d probe consumers were not scaled up within a minute of the window's end", missing)
	}
	return nil
}

// standingStill waits, once the traffic has stopped and every group has
// caught up, until a whole poll
// cycle passes without a status write (the figures that moved last are
// written once more, under the budget), then measures a window.
func (b *bench) standingStill() error {
	stopped := time.Now()
	for {
		before, err := snapshot(b.cs, b.managers, b.token)
		if err != nil {
			return err
		}
		time.Sleep(2 * b.cfg.poll)
		after, err := snapshot(b.cs, b.managers, b.token)
		if err != nil {
			return err
		}
		n := statusWrites(before, after)
		if n == 0 {
			break
		}
		fmt.Printf("  %s after the lag stopped: %.0f status writes in %.1f s; by kind, per second: %s\n", time.Since(stopped).Round(time.Second), n,
			after.apiAt.Sub(before.apiAt).Seconds(), writeKinds(before, after, after.managersAt.Sub(before.managersAt).Seconds()))
		if time.Since(stopped) > 10*time.Minute {
			return fmt.Errorf("status writes went on for 10 minutes after the lag stopped moving")
		}
	}
	fmt.Printf("lag stopped moving: the last moved figures were written within %s\n", time.Since(stopped).Round(time.Second))
	before, err := snapshot(b.cs, b.managers, b.token)
	if err != nil {
		return err
	}
	time.Sleep(b.cfg.window)
	after, err := snapshot(b.cs, b.managers, b.token)
	if err != nil {
		return err
	}
	b.printPhase("lag unchanged", before, after)
	return nil
}

// printPhase prints one window's line.
func (b *bench) printPhase(name string, before, after metrics) {
	secs := after.apiAt.Sub(before.apiAt).Seconds()
	cycles := secs / b.cfg.poll.Seconds()
	msecs := after.managersAt.Sub(before.managersAt).Seconds()
	mcycles := msecs / b.cfg.poll.Seconds()
	var apiAll float64
	for k, v := range after.api {
		if strings.HasSuffix(k, " WATCH") {
			continue
		}
		apiAll += v - before.api[k]
	}
	q := after.queue.since(before.queue)
	d := after.decision.since(before.decision)
	c := after.cycle.since(before.cycle)
	fmt.Printf("%-13s status writes/s %6.2f | API requests/cycle %7.1f | Kafka requests/cycle %5.1f | reconciles/s %6.1f | queue latency p50 %s p99 %s mean %s | decision latency p50 %s p99 %s (%d decisions) | poll cycle p50 %s p99 %s | RSS %s\n",
		name, statusWrites(before, after)/secs, apiAll/cycles, (after.kafka-before.kafka)/mcycles, q.count/msecs,
		ms(q.quantile(0.5)), ms(q.quantile(0.99)), ms(q.mean()), ms(d.quantile(0.5)), ms(d.quantile(0.99)), int(d.count),
		ms(c.quantile(0.5)), ms(c.quantile(0.99)), b.rssLine())
	fmt.Printf("  status writes/s by kind (the managers' count): %s; measured over %.1f s (API server) and %.1f s (managers)\n", writeKinds(before, after, msecs), secs, msecs)
}

// writeKinds is the managers' status writes per second of each kind.
func writeKinds(before, after metrics, secs float64) string {
	var parts []string
	for _, k := range []string{"scale", "state", "figures"} {
		parts = append(parts, fmt.Sprintf("%s %.2f", k, (after.writes[k]-before.writes[k])/secs))
	}
	return strings.Join(parts, ", ")
}

func statusWrites(before, after metrics) float64 {
	return after.api["eventconsumers/status PATCH"] + after.api["eventconsumers/status PUT"] -
		before.api["eventconsumers/status PATCH"] - before.api["eventconsumers/status PUT"]
}

func ms(s float64) string {
	if math.IsNaN(s) {
		return "-"
	}
	if s >= 1 {
		return fmt.Sprintf("%.2f s", s)
	}
	return fmt.Sprintf("%.0f ms", s*1000)
}

// rssLine is each live manager's RSS.
func (b *bench) rssLine() string {
	var parts []string
	for _, m := range b.managers {
		if m.exited() {
			continue
		}
		parts = append(parts, fmt.Sprintf("%.0f MiB", rss(m.pid)))
	}
	return strings.Join(parts, ", ")
}

// noiseGrowth prints the first manager's RSS growth when 3,000 unrelated
// 6 KB Secrets and 1,000 unrelated Deployments appear in another namespace.
func (b *bench) noiseGrowth(ctx context.Context) error {
	pid := b.managers[0].pid
	before := rss(pid)
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
	time.Sleep(b.cfg.window)
	after := rss(pid)
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
