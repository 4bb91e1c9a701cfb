// Package operator assembles the lagscale operator: the manager, the lag
// engine, the reconcilers and the health checks. cmd/manager and the
// sandbox both run it, so the sandbox runs exactly the shipped code.
package operator

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/config"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	"sigs.k8s.io/controller-runtime/pkg/metrics"
	"sigs.k8s.io/controller-runtime/pkg/metrics/filters"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/lagscale/lagscale/controllers"
	"github.com/lagscale/lagscale/internal/lag"
	"github.com/lagscale/lagscale/internal/promutil"
	"github.com/lagscale/lagscale/internal/scheme"
)

// The operator's client-go rate limit: requests per second and burst.
// Scaling writes (Deployments) and state changes must never queue behind a
// client-side limit sized for reporting; the status budget
// (StatusWritesPerSecond) bounds the bulk of the writes, and this limit is
// well above what it lets through plus one Deployment write per scale.
const (
	clientQPS   = 200
	clientBurst = 400
)

// clusterProbeTimeout bounds one probe of a KafkaCluster that a sharded
// replica reports on without polling it.
const clusterProbeTimeout = 10 * time.Second

// Options configure the operator.
type Options struct {
	// MetricsAddr serves Prometheus metrics; "0" disables it.
	MetricsAddr string
	// MetricsSecure serves the metrics over HTTPS, and only to a caller
	// whose bearer token the API server authenticates (TokenReview) and
	// authorizes for get on the /metrics URL (SubjectAccessReview), as the
	// kubebuilder scaffold does: the series name namespaces, consumers and
	// topics. cmd/manager and the chart turn it on; false serves plain
	// HTTP to anyone, for a local run.
	MetricsSecure bool
	// MetricsCertDir holds tls.crt and tls.key for the secure metrics
	// endpoint; empty, or without them, serves a self-signed certificate.
	MetricsCertDir string
	// ProbeAddr serves /healthz and /readyz; "0" disables it.
	ProbeAddr string
	// PprofAddr serves Go's /debug/pprof profiles; empty disables them.
	PprofAddr string
	// LeaderElect elects a leader with a Lease named LeaderElectionID.
	LeaderElect             bool
	LeaderElectionID        string
	LeaderElectionNamespace string
	// WatchNamespaces restricts the caches; empty watches all namespaces.
	WatchNamespaces []string
	// MaxConcurrentReconciles bounds parallel reconciles per controller.
	MaxConcurrentReconciles int
	// DefaultPollInterval is used for consumers that set none.
	DefaultPollInterval time.Duration
	// StatusInterval is the shortest time between two status writes of a
	// consumer that change only live lag figures; 0 uses
	// controllers.DefaultStatusInterval.
	StatusInterval time.Duration
	// StatusWritesPerSecond is the operator-wide budget of status writes
	// that carry only live lag figures; 0 uses
	// controllers.DefaultStatusWritesPerSecond.
	StatusWritesPerSecond float64
	// Registry receives lagscale's metrics; nil uses controller-runtime's
	// global registry, which the metrics endpoint serves.
	Registry prometheus.Registerer
	// SkipNameValidation allows more than one operator in one process, as
	// tests start several; a real deployment leaves it false.
	SkipNameValidation bool
	// Sharding splits the EventConsumers between every replica instead of
	// electing one to reconcile them all: each replica holds a membership
	// Lease in LeaderElectionNamespace, and the elected one (leader election
	// stays on) runs the sharder, which labels each consumer with its owner.
	Sharding bool
	// ShardIdentity is this replica's name when sharding; empty uses the
	// host name (the pod name).
	ShardIdentity string
	// OnElected, when set, is called once this instance leads (at once
	// without leader election): tests use it to see which one reconciles.
	OnElected func()
}

// Run runs the operator until ctx is cancelled.
func Run(ctx context.Context, cfg *rest.Config, o Options) error {
	log := ctrl.Log.WithName("setup")
	var err error
	mgrOpts := ctrl.Options{
		Scheme:                        scheme.New(),
		Metrics:                       metricsOptions(o),
		HealthProbeBindAddress:        o.ProbeAddr,
		PprofBindAddress:              o.PprofAddr,
		LeaderElection:                o.LeaderElect,
		LeaderElectionID:              o.LeaderElectionID,
		LeaderElectionNamespace:       o.LeaderElectionNamespace,
		LeaderElectionReleaseOnCancel: true,
		Controller:                    config.Controller{SkipNameValidation: &o.SkipNameValidation},
		Cache:                         controllers.CacheOptions(o.WatchNamespaces),
		Client:                        controllers.ClientOptions(),
	}
	// client-go's own limit would throttle every request behind the
	// status writes; the status budget limits those instead, so the
	// client's limit only guards the API server against a runaway loop.
	cfg = rest.CopyConfig(cfg)
	cfg.QPS, cfg.Burst = clientQPS, clientBurst
	budget := controllers.NewStatusBudget(o.StatusWritesPerSecond)
	sh, err := newShard(o, budget)
	if err != nil {
		return err
	}
	if sh != nil {
		// Leader election elects the sharder; the reconcilers run on every
		// replica, over the consumers of the replica's own buckets.
		mgrOpts.LeaderElection = true
		mgrOpts.Cache = sh.CacheOptions(mgrOpts.Cache)
	}
	mgr, err := ctrl.NewManager(cfg, mgrOpts)
	if err != nil {
		return fmt.Errorf("create manager: %w", err)
	}

	reg := o.Registry
	if reg == nil {
		reg = metrics.Registry
	}
	rec := &controllers.EventConsumerReconciler{
		Client:              mgr.GetClient(),
		APIReader:           mgr.GetAPIReader(),
		WatchNamespaces:     o.WatchNamespaces,
		Recorder:            mgr.GetEventRecorder("lagscale"),
		DefaultPollInterval: o.DefaultPollInterval,
		StatusInterval:      o.StatusInterval,
		StatusBudget:        budget,
		Metrics:             controllers.NewMetrics(reg),
		LagRevisits:         true,
	}
	// Sharded, each replica's share of the budget moves with the number of
	// live replicas: the gauge shows the share in force.
	promutil.Register(reg, prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "lagscale_status_writes_per_second_limit",
		Help: "This replica's budget of EventConsumer status writes per second: the operator-wide budget, or sharded, its equal share among the live replicas.",
	}, rec.StatusBudget.PerSecond))
	engine := lag.NewEngine(lag.Options{
		Logger:      ctrl.Log.WithName("lag"),
		Registerer:  reg,
		OnChange:    rec.LagChanged,
		OnUnchanged: rec.LagUnchanged,
	})
	rec.Lag = engine
	// The lag engine runs where the EventConsumers are reconciled: on the
	// elected replica, or, sharded, on every replica for its own consumers.
	if err := mgr.Add(lagRunnable{Engine: engine, everyReplica: sh != nil}); err != nil {
		return fmt.Errorf("add lag engine: %w", err)
	}
	copts := controller.Options{MaxConcurrentReconciles: o.MaxConcurrentReconciles}
	kc := &controllers.KafkaClusterReconciler{Client: mgr.GetClient(), Lag: engine}
	if sh != nil {
		rec.Shard = sh
		kc.Sharded, kc.APIReader = true, mgr.GetAPIReader()
		kc.Probe = func(ctx context.Context, cfg lag.ClusterConfig) lag.ClusterStatus {
			return lag.Probe(ctx, cfg, clusterProbeTimeout)
		}
		if err := sh.Setup(mgr); err != nil {
			return fmt.Errorf("set up sharding: %w", err)
		}
	}
	ecOpts := copts
	ecOpts.NeedLeaderElection = ptr.To(sh == nil)
	if err := rec.SetupWithManager(mgr, ecOpts); err != nil {
		return fmt.Errorf("set up EventConsumer controller: %w", err)
	}
	// KafkaClusters are reported by the elected replica, sharded or not.
	if err := kc.SetupWithManager(mgr, copts); err != nil {
		return fmt.Errorf("set up KafkaCluster controller: %w", err)
	}

	// Ready only once the informer caches have synced: before that the
	// operator would act on an empty view of the cluster. Every replica,
	// leader or not, starts the informers and reports Ready when they have
	// synced, so that a rolling update proceeds and a follower takes over
	// with a warm cache.
	var synced atomic.Bool
	if err := mgr.Add(&cacheWarmer{cache: mgr.GetCache(), synced: &synced}); err != nil {
		return err
	}
	if err := mgr.AddHealthzCheck("ping", func(*http.Request) error { return nil }); err != nil {
		return err
	}
	if err := mgr.AddReadyzCheck("caches", func(*http.Request) error {
		if !synced.Load() {
			return errors.New("informer caches not synced yet")
		}
		return nil
	}); err != nil {
		return err
	}

	if o.OnElected != nil {
		go func() {
			select {
			case <-mgr.Elected():
				o.OnElected()
			case <-ctx.Done():
			}
		}()
	}
	log.Info("Starting operator", "watchNamespaces", o.WatchNamespaces, "leaderElection", mgrOpts.LeaderElection, "sharding", o.Sharding)
	err = mgr.Start(ctx)
	// Every runnable has stopped, so nothing of this replica writes any
	// more: its consumers may move at once instead of at the Lease's expiry.
	release, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if rerr := sh.Release(release); rerr != nil {
		log.Error(rerr, "Releasing the membership Lease failed; its consumers move when it expires")
	}
	return err
}

// serviceAccountNamespace is where a pod finds its own namespace.
const serviceAccountNamespace = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"

// newShard is the replica's part of a sharded operator when o asks for
// sharding (nil otherwise): its share of the status budget follows the
// number of live replicas.
func newShard(o Options, budget *controllers.StatusBudget) (*controllers.Shard, error) {
	if !o.Sharding {
		return nil, nil
	}
	so, err := shardOptions(o)
	if err != nil {
		return nil, err
	}
	so.Members = budget.Share
	sh, err := controllers.NewShard(*so)
	if err != nil {
		return nil, fmt.Errorf("set up sharding: %w", err)
	}
	return sh, nil
}

// shardOptions are the sharding settings o asks for: the replica's name
// (the host name unless given) and the namespace of the Leases (the leader
// election namespace, else the pod's own).
func shardOptions(o Options) (*controllers.ShardOptions, error) {
	so := &controllers.ShardOptions{Identity: o.ShardIdentity, Namespace: o.LeaderElectionNamespace, Group: o.LeaderElectionID,
		WatchNamespaces: o.WatchNamespaces}
	if so.Identity == "" {
		h, err := os.Hostname()
		if err != nil {
			return nil, fmt.Errorf("sharding: the replica's name: %w", err)
		}
		so.Identity = h
	}
	if so.Namespace == "" {
		raw, err := os.ReadFile(serviceAccountNamespace)
		if err != nil {
			return nil, fmt.Errorf("sharding needs --leader-election-namespace outside a pod: %w", err)
		}
		so.Namespace = strings.TrimSpace(string(raw))
	}
	return so, nil
}

// The secure metrics endpoint asks the API server who a caller is and
// whether it may read /metrics.
// +kubebuilder:rbac:groups=authentication.k8s.io,resources=tokenreviews,verbs=create
// +kubebuilder:rbac:groups=authorization.k8s.io,resources=subjectaccessreviews,verbs=create

// metricsOptions serves the metrics as o asks: plain, or over HTTPS behind
// controller-runtime's authentication and authorization filter.
func metricsOptions(o Options) metricsserver.Options {
	m := metricsserver.Options{BindAddress: o.MetricsAddr}
	if o.MetricsSecure {
		m.SecureServing = true
		m.FilterProvider = filters.WithAuthenticationAndAuthorization
		m.CertDir = o.MetricsCertDir
		// HTTP/2 is off, as in the kubebuilder scaffold: it exposes the
		// endpoint to the HTTP/2 Rapid Reset and Stream Cancellation
		// attacks (CVE-2023-44487, CVE-2023-39325), and a scrape does not
		// need it.
		m.TLSOpts = []func(*tls.Config){func(c *tls.Config) { c.NextProtos = []string{"http/1.1"} }}
	}
	return m
}

// cacheWarmer starts the informers of every kind the controllers watch and
// records when they have synced. It runs on every replica: it does not need
// leader election, unlike the controllers, whose own watches would start
// the informers only on the leader.
type cacheWarmer struct {
	cache  cache.Cache
	synced *atomic.Bool
}

// NeedLeaderElection implements manager.LeaderElectionRunnable.
func (w *cacheWarmer) NeedLeaderElection() bool { return false }

// lagRunnable runs the lag engine on the elected replica only, or on every
// replica of a sharded operator, each of which polls its own consumers.
type lagRunnable struct {
	*lag.Engine
	everyReplica bool
}

// NeedLeaderElection implements manager.LeaderElectionRunnable.
func (l lagRunnable) NeedLeaderElection() bool { return !l.everyReplica }

// Start implements manager.Runnable.
func (w *cacheWarmer) Start(ctx context.Context) error {
	for _, obj := range controllers.CachedObjects() {
		if _, err := w.cache.GetInformer(ctx, obj, cache.BlockUntilSynced(false)); err != nil {
			return fmt.Errorf("start informer for %T: %w", obj, err)
		}
	}
	if w.cache.WaitForCacheSync(ctx) {
		w.synced.Store(true)
	}
	<-ctx.Done()
	return nil
}

var (
	_ manager.LeaderElectionRunnable = &cacheWarmer{}
	_ manager.LeaderElectionRunnable = lagRunnable{}
)
