// Package operator tests the assembled operator (internal/operator) the way
// it is installed: from the Helm chart, under the chart's ServiceAccount,
// with leader election and its metrics endpoint, against a real API server
// and a real Kafka-protocol broker (kfake).
package operator

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	appsv1 "k8s.io/api/apps/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/lagscale/lagscale/api/v1alpha1"
	"github.com/lagscale/lagscale/internal/operator"
	"github.com/lagscale/lagscale/internal/testenv"
	"github.com/lagscale/lagscale/internal/testkit"
)

const (
	releaseNS = "lagscale-system"
	release   = "ops"
	// chartSA is the ServiceAccount the chart creates for release "ops".
	chartSA = "ops-lagscale"
)

func eventually(t *testing.T, wait time.Duration, cond func() error) {
	t.Helper()
	testenv.Eventually(t, wait, cond)
}

// helmInstall starts a control plane without CRDs and installs the chart
// into it with the pinned helm, as a user would.
func helmInstall(t *testing.T, args ...string) *testenv.Env {
	t.Helper()
	helm := filepath.Join(testenv.Root(), "bin", "helm")
	if _, err := os.Stat(helm); err != nil {
		t.Fatalf("helm not found at %s: run `make helm`", helm)
	}
	env, err := testenv.StartWith(testenv.Options{NoCRDs: true})
	if err != nil {
		t.Fatalf("start control plane: %v", err)
	}
	t.Cleanup(func() { _ = env.Stop() })
	kubeconfig := filepath.Join(t.TempDir(), "kubeconfig")
	if err := env.WriteKubeconfig(kubeconfig); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(helm, append([]string{"install", release, filepath.Join(testenv.Root(), "charts", "lagscale"),
		"--namespace", releaseNS, "--create-namespace", "--kubeconfig", kubeconfig, "--wait=false"}, args...)...)
	cmd.Env = append(os.Environ(), "HELM_CACHE_HOME="+t.TempDir(), "HELM_CONFIG_HOME="+t.TempDir(), "HELM_DATA_HOME="+t.TempDir())
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("helm install: %v\n%s", err, out)
	}
	// helm does not wait for CRDs rendered from templates to be served.
	eventually(t, 30*time.Second, func() error {
		return env.Client.List(context.Background(), &v1alpha1.EventConsumerList{})
	})
	return env
}

// asServiceAccount impersonates the chart's ServiceAccount.
func asServiceAccount(env *testenv.Env) *rest.Config {
	cfg := rest.CopyConfig(env.Admin)
	cfg.Impersonate = rest.ImpersonationConfig{
		UserName: fmt.Sprintf("system:serviceaccount:%s:%s", releaseNS, chartSA),
		Groups:   []string{"system:serviceaccounts", "system:serviceaccounts:" + releaseNS, "system:authenticated"},
	}
	return cfg
}

type running struct {
	cancel  context.CancelFunc
	done    chan error
	elected atomic.Bool
}

func (r *running) stop(t *testing.T) {
	r.cancel()
	if err := <-r.done; err != nil {
		t.Errorf("operator: %v", err)
	}
}

func startOperator(t *testing.T, cfg *rest.Config, o operator.Options) *running {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{cancel: cancel, done: make(chan error, 1)}
	o.OnElected = func() { r.elected.Store(true) }
	o.SkipNameValidation = true
	go func() { r.done <- operator.Run(ctx, cfg, o) }()
	return r
}

// scrape reads the secure metrics endpoint with a token allowed to.
func scrape(addr, token string) (string, error) {
	code, body, err := testenv.ScrapeMetrics(addr, token)
	if err == nil && code != http.StatusOK {
		err = fmt.Errorf("/metrics answered %d: %s", code, body)
	}
	return body, err
}

// TestHelmInstalledOperatorEndToEnd installs the chart, runs the operator as
// the chart's ServiceAccount with leader election, and follows one
// EventConsumer on a kfake broker through Deployment, status, conditions,
// events, the Lease and /metrics, then deletes it.
func TestHelmInstalledOperatorEndToEnd(t *testing.T) {
	env := helmInstall(t)
	ctx := context.Background()
	c := env.Client
	kafka := kfakeWithPayments(ctx, t)

	metricsAddr := testkit.FreeAddr(t)
	op := startOperator(t, asServiceAccount(env), operator.Options{
		MetricsAddr: metricsAddr, MetricsSecure: true, ProbeAddr: "0",
		LeaderElect: true, LeaderElectionID: "lagscale", LeaderElectionNamespace: releaseNS,
		MaxConcurrentReconciles: 2, DefaultPollInterval: time.Second,
	})
	defer op.stop(t)

	ec := createPaymentsConsumer(ctx, t, c, kafka.ListenAddrs())
	checkScaledFromLag(ctx, t, c, ec)
	// Lease taken.
	lease := &coordinationv1.Lease{}
	if err := c.Get(ctx, client.ObjectKey{Namespace: releaseNS, Name: "lagscale"}, lease); err != nil || lease.Spec.HolderIdentity == nil || *lease.Spec.HolderIdentity == "" {
		t.Fatalf("lease not taken: %v %+v", err, lease.Spec)
	}
	reader := checkMetricsNeedTheReaderRole(ctx, t, env, metricsAddr)
	checkConsumerSeries(t, metricsAddr, reader)

	// Delete the consumer: its series go.
	if err := c.Delete(ctx, ec); err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, func() error {
		body, err := scrape(metricsAddr, reader)
		if err != nil {
			return err
		}
		for _, line := range strings.Split(body, "\n") {
			if strings.HasPrefix(line, "lagscale_consumer_") && strings.Contains(line, `name="payments"`) {
				return fmt.Errorf("series of the deleted consumer remain: %s", line)
			}
		}
		return nil
	})
}

// kfakeWithPayments is a kfake broker with 7 records on each of the 3
// partitions of payments, closed when the test ends.
func kfakeWithPayments(ctx context.Context, t *testing.T) *kfake.Cluster {
	kafka, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(3, "payments"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(kafka.Close)
	prod, err := kgo.NewClient(kgo.SeedBrokers(kafka.ListenAddrs()...), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	defer prod.Close()
	for p := int32(0); p < 3; p++ {
		recs := make([]*kgo.Record, 7)
		for i := range recs {
			recs[i] = &kgo.Record{Topic: "payments", Partition: p, Value: []byte("x")}
		}
		if err := prod.ProduceSync(ctx, recs...).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	return kafka
}

// createPaymentsConsumer creates the payments namespace and an
// EventConsumer of payments at 10 records of lag per replica.
func createPaymentsConsumer(ctx context.Context, t *testing.T, c client.Client, brokers []string) *v1alpha1.EventConsumer {
	ns := "payments"
	if err := c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
		t.Fatal(err)
	}
	ec := &v1alpha1.EventConsumer{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "payments"}, Spec: v1alpha1.EventConsumerSpec{
		Topics: []string{"payments"}, ConsumerGroup: "payments-handler",
		Kafka:   v1alpha1.KafkaConnection{BootstrapServers: brokers},
		Handler: &v1alpha1.HandlerSpec{Image: "handler:1"},
		Scaling: v1alpha1.ScalingSpec{Policy: v1alpha1.PolicyLagThreshold, LagThreshold: ptr[int64](10), PollIntervalSeconds: ptr[int32](1), OffsetResetPolicy: v1alpha1.OffsetResetEarliest},
	}}
	if err := c.Create(ctx, ec); err != nil {
		t.Fatal(err)
	}
	return ec
}

// checkScaledFromLag: the Deployment is applied and scaled from lag (21
// records / 10 -> 3 replicas), status and conditions are written, and a
// ScaledUp event is recorded.
func checkScaledFromLag(ctx context.Context, t *testing.T, c client.Client, ec *v1alpha1.EventConsumer) {
	eventually(t, 60*time.Second, func() error {
		d := &appsv1.Deployment{}
		if err := c.Get(ctx, client.ObjectKeyFromObject(ec), d); err != nil {
			return err
		}
		if *d.Spec.Replicas != 3 {
			return fmt.Errorf("replicas %d, want 3", *d.Spec.Replicas)
		}
		return nil
	})
	eventually(t, 30*time.Second, func() error {
		got := &v1alpha1.EventConsumer{}
		if err := c.Get(ctx, client.ObjectKeyFromObject(ec), got); err != nil {
			return err
		}
		kr := meta.FindStatusCondition(got.Status.Conditions, v1alpha1.ConditionKafkaReachable)
		if got.Status.Lag == nil || got.Status.Lag.Total != 21 || kr == nil || kr.Status != metav1.ConditionTrue || got.Status.LastScale == nil {
			return fmt.Errorf("status %+v", got.Status)
		}
		return nil
	})
	eventually(t, 30*time.Second, func() error {
		list := &corev1.EventList{}
		if err := c.List(ctx, list, client.InNamespace(ec.Namespace)); err != nil {
			return err
		}
		var reasons []string
		for _, e := range list.Items {
			reasons = append(reasons, e.Reason)
			if e.Reason == v1alpha1.EventScaledUp {
				return nil
			}
		}
		return fmt.Errorf("no ScaledUp event among %v", reasons)
	})
}

// checkMetricsNeedTheReaderRole: the metrics are served over HTTPS to a
// token the chart's metrics-reader ClusterRole is bound to, the way
// Prometheus scrapes through the ServiceMonitor; the operator checks the
// token with the chart's metrics-auth grant. No token, or one without the
// role, gets no series. It returns a reader's token.
func checkMetricsNeedTheReaderRole(ctx context.Context, t *testing.T, env *testenv.Env, metricsAddr string) string {
	reader, err := env.ServiceAccountToken(ctx, "monitoring", "prometheus", release+"-lagscale-metrics-reader")
	if err != nil {
		t.Fatal(err)
	}
	stranger, err := env.ServiceAccountToken(ctx, "monitoring", "stranger", "")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		who, token string
		want       int
	}{{"no token", "", http.StatusUnauthorized}, {"a token without the metrics-reader role", stranger, http.StatusForbidden}} {
		eventually(t, 30*time.Second, func() error {
			code, body, err := testenv.ScrapeMetrics(metricsAddr, tc.token)
			if err != nil {
				return err
			}
			if code != tc.want {
				return fmt.Errorf("%s: /metrics answered %d, want %d", tc.who, code, tc.want)
			}
			if strings.Contains(body, "lagscale_") {
				return fmt.Errorf("%s: /metrics served series: %.200s", tc.who, body)
			}
			return nil
		})
	}
	return reader
}

// checkConsumerSeries: /metrics carries the consumer's series with the
// right values.
func checkConsumerSeries(t *testing.T, metricsAddr, reader string) {
	want := []string{
		`lagscale_consumer_lag_records{name="payments",namespace="payments"} 21`,
		`lagscale_consumer_replicas{kind="desired",name="payments",namespace="payments"} 3`,
		`lagscale_scale_events_total{direction="up",name="payments",namespace="payments"} 1`,
		`lagscale_consumer_inflow_records_per_second{name="payments",namespace="payments"}`,
		`lagscale_consumer_lag_seconds{name="payments",namespace="payments"}`,
		`lagscale_kafka_requests_total{`,
		`lagscale_lag_poll_duration_seconds_bucket{`,
	}
	eventually(t, 30*time.Second, func() error {
		body, err := scrape(metricsAddr, reader)
		if err != nil {
			return err
		}
		for _, w := range want {
			if !strings.Contains(body, w) {
				return fmt.Errorf("/metrics lacks %s", w)
			}
		}
		return nil
	})
}

// TestChartRulesAreTheGeneratedRules lists any permission the installed
// chart grants beyond what controller-gen generated from the reconcilers'
// markers, and any it lacks.
func TestChartRulesAreTheGeneratedRules(t *testing.T) {
	env := helmInstall(t)
	installed := &rbacv1.ClusterRole{}
	if err := env.Client.Get(context.Background(), client.ObjectKey{Name: chartSA}, installed); err != nil {
		t.Fatal(err)
	}
	// The metrics endpoint's reviews are cluster-scoped, so the chart
	// keeps them in a ClusterRole of their own; together the two grant
	// the generated ClusterRole.
	reviews := &rbacv1.ClusterRole{}
	if err := env.Client.Get(context.Background(), client.ObjectKey{Name: chartSA + "-metrics-auth"}, reviews); err != nil {
		t.Fatal(err)
	}
	installed.Rules = append(installed.Rules, reviews.Rules...)
	installedRole := &rbacv1.Role{}
	if err := env.Client.Get(context.Background(), client.ObjectKey{Namespace: releaseNS, Name: chartSA + "-leader-election"}, installedRole); err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(filepath.Join(testenv.Root(), "config", "rbac", "role.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	generated := map[string][]rbacv1.PolicyRule{}
	for _, doc := range strings.Split(string(raw), "\n---\n") {
		var r struct {
			Kind  string              `json:"kind"`
			Rules []rbacv1.PolicyRule `json:"rules"`
		}
		if err := yaml.Unmarshal([]byte(strings.TrimPrefix(doc, "---\n")), &r); err != nil {
			t.Fatal(err)
		}
		generated[r.Kind] = r.Rules
	}
	for kind, rules := range map[string][]rbacv1.PolicyRule{"ClusterRole": installed.Rules, "Role": installedRole.Rules} {
		have, need := permissions(rules), permissions(generated[kind])
		var extra, missing []string
		for p := range have {
			if !need[p] {
				extra = append(extra, p)
			}
		}
		for p := range need {
			if !have[p] {
				missing = append(missing, p)
			}
		}
		sort.Strings(extra)
		sort.Strings(missing)
		if len(extra) > 0 {
			t.Errorf("the chart's %s grants permissions the operator never uses: %v", kind, extra)
		}
		if len(missing) > 0 {
			t.Errorf("the chart's %s lacks generated permissions: %v", kind, missing)
		}
	}
}

// permissions flattens rules into "group/resource:verb" strings.
func permissions(rules []rbacv1.PolicyRule) map[string]bool {
	out := map[string]bool{}
	for _, r := range rules {
		for _, g := range r.APIGroups {
			for _, res := range r.Resources {
				for _, v := range r.Verbs {
					out[g+"/"+res+":"+v] = true
				}
			}
		}
	}
	return out
}

// TestLeaderElection runs two operators against one API server: only one
// is elected and reconciles; when it stops, the other takes over within
// the lease duration.
func TestLeaderElection(t *testing.T) {
	env := helmInstall(t)
	cfg := asServiceAccount(env)
	opts := operator.Options{
		MetricsAddr: "0",
		LeaderElect: true, LeaderElectionID: "lagscale", LeaderElectionNamespace: releaseNS,
		MaxConcurrentReconciles: 1, DefaultPollInterval: time.Second,
	}
	probeA, probeB := testkit.FreeAddr(t), testkit.FreeAddr(t)
	opts.ProbeAddr = probeA
	a := startOperator(t, cfg, opts)
	opts.ProbeAddr = probeB
	b := startOperator(t, cfg, opts)
	stopped := map[*running]bool{}
	defer func() {
		for _, r := range []*running{a, b} {
			if !stopped[r] {
				r.stop(t)
			}
		}
	}()
	eventually(t, 30*time.Second, func() error {
		if !a.elected.Load() && !b.elected.Load() {
			return fmt.Errorf("no leader yet")
		}
		return nil
	})
	// Give the other instance time to (wrongly) become leader too.
	time.Sleep(3 * time.Second)
	if a.elected.Load() && b.elected.Load() {
		t.Fatal("both instances lead")
	}
	leader, follower := a, b
	if b.elected.Load() {
		leader, follower = b, a
	}
	// Both are Ready: the follower has synced its caches too, so a rolling
	// update of the operator proceeds.
	eventually(t, 30*time.Second, func() error {
		for _, addr := range []string{probeA, probeB} {
			if code, body := readyz(addr); code != http.StatusOK {
				return fmt.Errorf("%s/readyz answered %d: %s", addr, code, body)
			}
		}
		return nil
	})
	start := time.Now()
	leader.stop(t)
	stopped[leader] = true
	// controller-runtime's default lease duration is 15 s; the leader
	// releases the Lease on shutdown, so takeover is usually much faster.
	eventually(t, 15*time.Second, func() error {
		if !follower.elected.Load() {
			return fmt.Errorf("follower not elected after %s", time.Since(start))
		}
		return nil
	})
	t.Logf("takeover after %s", time.Since(start).Truncate(time.Millisecond))
}

func ptr[T any](v T) *T { return &v }

// readyz asks an operator's probe endpoint whether it is Ready.
func readyz(addr string) (int, string) {
	resp, err := http.Get("http://" + addr + "/readyz")
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}
