// Command manager is the lagscale operator: it reconciles EventConsumers
// and KafkaClusters, polls consumer-group lag from Kafka and scales the
// handler Deployments.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	"go.uber.org/zap/zapcore"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/lagscale/lagscale/api/v1alpha1"
	"github.com/lagscale/lagscale/controllers"
	"github.com/lagscale/lagscale/internal/memlimit"
	"github.com/lagscale/lagscale/internal/operator"
)

// options are the operator's command-line flags.
type options struct {
	metricsAddr         string
	metricsSecure       bool
	metricsCertDir      string
	probeAddr           string
	leaderElect         bool
	leaderElectionID    string
	leaderElectionNS    string
	watchNamespaces     string
	maxConcurrent       int
	logFormat           string
	logLevel            string
	defaultPollInterval time.Duration
	statusInterval      time.Duration
	statusWrites        float64
	sharding            bool
	shardIdentity       string
	pprofAddr           string
}

func parseFlags(args []string) (options, error) {
	var o options
	fs := flag.NewFlagSet("manager", flag.ContinueOnError)
	fs.StringVar(&o.metricsAddr, "metrics-bind-address", ":8443", "Address of the Prometheus metrics endpoint; 0 disables it.")
	fs.BoolVar(&o.metricsSecure, "metrics-secure", true, "Serve the metrics over HTTPS, only to callers whose token the API server authenticates and authorizes for get on /metrics; false serves plain HTTP to anyone.")
	fs.StringVar(&o.metricsCertDir, "metrics-cert-dir", "", "Directory with tls.crt and tls.key for the secure metrics endpoint; empty serves a self-signed certificate.")
	fs.StringVar(&o.probeAddr, "health-probe-bind-address", ":8081", "Address of /healthz and /readyz.")
	fs.StringVar(&o.pprofAddr, "pprof-bind-address", "", "Address of Go's /debug/pprof profiles, for diagnosis; empty disables them. Unauthenticated: bind it to localhost.")
	fs.BoolVar(&o.leaderElect, "leader-elect", true, "Elect a leader with a Lease so that only one replica reconciles, also while a rolling update runs two at once.")
	fs.StringVar(&o.leaderElectionID, "leader-election-id", "lagscale.lagscale.dev", "Name of the leader election Lease.")
	fs.StringVar(&o.leaderElectionNS, "leader-election-namespace", "", "Namespace of the Lease; default: the pod's namespace.")
	fs.StringVar(&o.watchNamespaces, "watch-namespaces", "", "Comma-separated namespaces to watch; empty watches all.")
	fs.IntVar(&o.maxConcurrent, "max-concurrent-reconciles", 4, "EventConsumers reconciled in parallel.")
	fs.StringVar(&o.logFormat, "log-format", "json", "Log format: json or text.")
	fs.StringVar(&o.logLevel, "log-level", "info", "Log level: debug, info or error.")
	fs.DurationVar(&o.defaultPollInterval, "default-poll-interval", time.Duration(v1alpha1.DefaultPollIntervalSeconds)*time.Second, "Lag poll interval for consumers that set none.")
	fs.DurationVar(&o.statusInterval, "status-interval", controllers.DefaultStatusInterval, "Shortest time between two status writes of a consumer that change only its lag figures (live values are on /metrics).")
	fs.Float64Var(&o.statusWrites, "status-writes-per-second", controllers.DefaultStatusWritesPerSecond, "Operator-wide budget of status writes per second. Changes of state take their turn before lag figures; when it is short the figures' interval stretches. The record of a scale is always written at once.")
	fs.BoolVar(&o.sharding, "sharding", false, "Split the EventConsumers between all replicas (a Lease each, consistent hashing of the consumer's UID) instead of one leader reconciling them all; leader election then elects the replica that assigns them.")
	fs.StringVar(&o.shardIdentity, "shard-identity", "", "This replica's name among the shards (its Lease and its consumers' label); default: the host name, which in a pod is the pod's name.")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if o.logFormat != "json" && o.logFormat != "text" {
		return o, fmt.Errorf("--log-format must be json or text, not %q", o.logFormat)
	}
	if _, err := zapcore.ParseLevel(o.logLevel); err != nil {
		return o, fmt.Errorf("--log-level: %w", err)
	}
	if o.maxConcurrent < 1 {
		return o, errors.New("--max-concurrent-reconciles must be at least 1")
	}
	if o.statusWrites <= 0 {
		return o, errors.New("--status-writes-per-second must be greater than 0")
	}
	if o.defaultPollInterval < time.Second || o.defaultPollInterval > 300*time.Second {
		return o, errors.New("--default-poll-interval must be between 1s and 300s")
	}
	return o, nil
}

func main() {
	o, err := parseFlags(os.Args[1:])
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	if err := run(ctrl.SetupSignalHandler(), o); err != nil {
		ctrl.Log.Error(err, "Operator failed")
		os.Exit(1)
	}
}

func run(ctx context.Context, o options) error {
	level, _ := zapcore.ParseLevel(o.logLevel)
	ctrl.SetLogger(zap.New(zap.UseDevMode(o.logFormat == "text"), zap.Level(level)))
	soft, why := memlimit.Apply("/sys/fs/cgroup")
	ctrl.Log.Info("Go soft memory limit", "bytes", soft, "from", why)
	cfg, err := ctrl.GetConfig()
	if err != nil {
		return fmt.Errorf("kubeconfig: %w", err)
	}
	return operator.Run(ctx, cfg, operator.Options{
		MetricsAddr:             o.metricsAddr,
		MetricsSecure:           o.metricsSecure,
		MetricsCertDir:          o.metricsCertDir,
		ProbeAddr:               o.probeAddr,
		PprofAddr:               o.pprofAddr,
		LeaderElect:             o.leaderElect,
		LeaderElectionID:        o.leaderElectionID,
		LeaderElectionNamespace: o.leaderElectionNS,
		WatchNamespaces:         splitList(o.watchNamespaces),
		MaxConcurrentReconciles: o.maxConcurrent,
		DefaultPollInterval:     o.defaultPollInterval,
		StatusInterval:          o.statusInterval,
		StatusWritesPerSecond:   o.statusWrites,
		Sharding:                o.sharding,
		ShardIdentity:           o.shardIdentity,
	})
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}
