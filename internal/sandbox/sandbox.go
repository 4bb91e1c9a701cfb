// Package sandbox runs a whole local cluster for lagscale: etcd,
// kube-apiserver, kube-controller-manager, kube-scheduler and kwok's fake
// nodes built by hack/tools, a Kafka broker (kfake in process, or Apache
// Kafka from the jars of `make kafka` with Options.Kafka "apache"), the
// operator itself
// (internal/operator, the code of cmd/manager), and a pod runner that plays
// the kubelet for handler pods by running their handlers as local
// processes.
//
// Every process it starts is recorded in DIR/pids with its start time, so
// that `lagscale sandbox down` (or a test) stops exactly those processes.
package sandbox

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/go-logr/logr"
	"github.com/twmb/franz-go/pkg/kfake"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/lagscale/lagscale/api/v1alpha1"
	"github.com/lagscale/lagscale/internal/kafkabroker"
	"github.com/lagscale/lagscale/internal/operator"
	"github.com/lagscale/lagscale/internal/scheme"
)

// Options configure a sandbox.
type Options struct {
	// Dir holds the sandbox's state: kubeconfig, certificates, etcd and
	// Kafka data, logs, the pid file.
	Dir string
	// Root is the lagscale repository (CRDs, RBAC, examples). Default: the
	// repository around the working directory or the executable.
	Root string
	// BinDir holds kwok, kwok-stages/, k8s/<version>/ and example-handler.
	// Default: Root/bin.
	BinDir string
	// Kafka is the broker: KafkaKfake (the default when empty) or
	// KafkaApache.
	Kafka string
	// KafkaPort is the broker's (PLAINTEXT) port on 127.0.0.1; 0 picks a
	// free one.
	KafkaPort int
	// APIPort is kube-apiserver's port on 127.0.0.1; 0 picks a free one.
	APIPort int
	// ImagesFile maps more images to local commands (see LoadImageMap).
	ImagesFile string
	// DefaultPollInterval is the operator's lag poll interval for consumers
	// that set none.
	DefaultPollInterval time.Duration
	// Progress receives one line per step; nil discards them.
	Progress io.Writer
	// BuildMissing runs `make sandbox-tools` in Root when a binary is
	// missing, instead of failing with that command as the fix.
	BuildMissing bool
}

// The brokers Options.Kafka names.
const (
	// KafkaKfake is franz-go's kfake, in process: it starts in milliseconds.
	KafkaKfake = "kfake"
	// KafkaApache is Apache Kafka kafkabroker.Version, a JVM started from
	// BinDir/kafka/<version>/libs (`make kafka`) and recorded in DIR/pids
	// as "kafka".
	KafkaApache = "apache"
)

// Sandbox is a running sandbox.
type Sandbox struct {
	opts   Options
	layout layout
	pids   *pidFile
	pki    pki

	apiPort  int
	children []*child

	// Config is a cluster-admin rest config; Client an admin client.
	Config *rest.Config
	Client client.Client

	kafkaMu   sync.Mutex
	kafka     *kfake.Cluster
	apache    *kafkabroker.Broker
	kafkaAddr string

	runner *PodRunner

	cancel  context.CancelFunc
	opDone  chan error
	stopped sync.Once
	logFile *os.File
}

// Kubeconfig is the path of the admin kubeconfig.
func (s *Sandbox) Kubeconfig() string { return s.layout.Kubeconfig() }

// KafkaAddr is the broker's host:port.
func (s *Sandbox) KafkaAddr() string { return s.kafkaAddr }

// Dir is the sandbox directory.
func (s *Sandbox) Dir() string { return s.layout.Dir }

// Runner is the pod runner.
func (s *Sandbox) Runner() *PodRunner { return s.runner }

func (s *Sandbox) progress(format string, args ...any) {
	if s.opts.Progress != nil {
		fmt.Fprintf(s.opts.Progress, ">> "+format+"\n", args...)
	}
}

// DefaultDir is where the sandbox lives unless --dir says otherwise.
func DefaultDir() string {
	if d, err := os.UserCacheDir(); err == nil {
		return filepath.Join(d, "lagscale", "sandbox")
	}
	return filepath.Join(os.TempDir(), "lagscale-sandbox")
}

// FindRoot finds the lagscale repository: the nearest directory above dir
// whose go.mod declares github.com/lagscale/lagscale.
func FindRoot(dir string) (string, bool) {
	for d := dir; ; d = filepath.Dir(d) {
		if b, err := os.ReadFile(filepath.Join(d, "go.mod")); err == nil && strings.Contains(string(b), "module github.com/lagscale/lagscale\n") {
			return d, true
		}
		if filepath.Dir(d) == d {
			return "", false
		}
	}
}

func (o *Options) defaults() error {
	if o.Dir == "" {
		o.Dir = DefaultDir()
	}
	abs, err := filepath.Abs(o.Dir)
	if err != nil {
		return err
	}
	o.Dir = abs
	if o.Root == "" {
		wd, _ := os.Getwd()
		root, ok := FindRoot(wd)
		if !ok {
			if exe, err := os.Executable(); err == nil {
				root, ok = FindRoot(filepath.Dir(exe))
			}
		}
		if !ok {
			return errors.New("cannot find the lagscale repository (CRDs, RBAC, binaries): run from inside a lagscale checkout")
		}
		o.Root = root
	}
	if o.BinDir == "" {
		o.BinDir = filepath.Join(o.Root, "bin")
	}
	switch o.Kafka {
	case "":
		o.Kafka = KafkaKfake
	case KafkaKfake, KafkaApache:
	default:
		return fmt.Errorf("unknown Kafka broker %q: want %q or %q", o.Kafka, KafkaKfake, KafkaApache)
	}
	if o.DefaultPollInterval == 0 {
		o.DefaultPollInterval = time.Duration(v1alpha1.DefaultPollIntervalSeconds) * time.Second
	}
	return nil
}

// requiredBinaries are the files `up` needs, relative to BinDir.
func requiredBinaries() []string {
	k8s := filepath.Join("k8s", KubernetesVersion)
	out := []string{
		filepath.Join(k8s, "etcd"), filepath.Join(k8s, "kube-apiserver"),
		filepath.Join(k8s, "kube-controller-manager"), filepath.Join(k8s, "kube-scheduler"),
		"kwok",
	}
	for _, s := range kwokStages {
		out = append(out, filepath.Join("kwok-stages", s))
	}
	return out
}

// missingBinaries lists the required files that do not exist.
func missingBinaries(binDir string) []string {
	var missing []string
	for _, b := range requiredBinaries() {
		if _, err := os.Stat(filepath.Join(binDir, b)); err != nil {
			missing = append(missing, b)
		}
	}
	return missing
}

// Up starts the sandbox and returns once the control plane, Kafka, the
// operator and the pod runner run. On error everything already started is
// stopped again. Call Stop when done.
func Up(ctx context.Context, o Options) (_ *Sandbox, err error) {
	if err := o.defaults(); err != nil {
		return nil, err
	}
	start := time.Now()
	s := &Sandbox{opts: o, layout: layout{Dir: o.Dir}}
	s.pids = &pidFile{path: s.layout.PIDs()}
	if err := s.preflight(ctx); err != nil {
		return nil, err
	}
	if err := s.pids.add("sandbox", os.Getpid()); err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			s.Stop()
		}
	}()

	if err := s.startControlPlane(ctx); err != nil {
		return s, err
	}
	if err := s.connect(); err != nil {
		return s, err
	}
	s.progress("creating 3 kwok nodes, installing CRDs and the operator's RBAC")
	if err := s.createNodes(ctx, 3); err != nil {
		return s, err
	}
	opCfg, err := s.installOperatorPrereqs(ctx)
	if err != nil {
		return s, err
	}
	if err := s.startBroker(); err != nil {
		return s, err
	}
	runCtx, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	if err := s.startOperator(runCtx, opCfg); err != nil {
		return s, err
	}
	if err := s.startPodRunner(runCtx); err != nil {
		return s, err
	}
	if err := s.waitNodesReady(ctx, 3, 60*time.Second); err != nil {
		return s, err
	}
	s.progress("sandbox up in %s", time.Since(start).Round(100*time.Millisecond))
	return s, nil
}

// preflight checks, before anything starts, what would otherwise fail
// late: another sandbox in the directory, a directory of another version,
// Apache Kafka's JDK and jars, the binaries (built now with BuildMissing)
// and the ports; then it picks the API server's port and makes the
// certificates.
func (s *Sandbox) preflight(ctx context.Context) (err error) {
	o := s.opts
	if err := os.MkdirAll(o.Dir, 0o755); err != nil {
		return err
	}
	if err := s.checkNotRunning(); err != nil {
		return err
	}
	if err := s.layout.checkVersion(); err != nil {
		return err
	}
	if o.Kafka == KafkaApache {
		// Before anything starts: without a JDK or the jars nothing else
		// is worth building or starting.
		if _, err := kafkabroker.FindJava(); err != nil {
			return err
		}
		if _, err := kafkabroker.LibsDir(o.BinDir, kafkabroker.Version); err != nil {
			return err
		}
	}
	if missing := missingBinaries(o.BinDir); len(missing) > 0 {
		if !o.BuildMissing {
			return fmt.Errorf("missing %s in %s: run `make sandbox-tools` (the first build takes about 10 minutes)", strings.Join(missing, ", "), o.BinDir)
		}
		if err := buildTools(ctx, o.Root, o.Progress); err != nil {
			return err
		}
	}
	if o.KafkaPort != 0 {
		if err := checkPortFree(o.KafkaPort, "Kafka", "stop what listens there or pass --kafka-port with a free port"); err != nil {
			return err
		}
	}
	s.apiPort = o.APIPort
	if s.apiPort != 0 {
		if err := checkPortFree(s.apiPort, "kube-apiserver", "stop what listens there or pass --api-port with a free port"); err != nil {
			return err
		}
	} else if s.apiPort, err = freePort(); err != nil {
		return err
	}
	if s.pki, err = ensurePKI(s.layout.PKI()); err != nil {
		return fmt.Errorf("create certificates: %w", err)
	}
	return nil
}

// connect makes the admin rest config and client from the kubeconfig the
// control plane wrote.
func (s *Sandbox) connect() error {
	cfg, err := clientcmd.BuildConfigFromFlags("", s.layout.Kubeconfig())
	if err != nil {
		return err
	}
	cfg.QPS, cfg.Burst = 50, 100
	s.Config = cfg
	s.Client, err = client.New(cfg, client.Options{Scheme: scheme.New()})
	return err
}

// startBroker starts the Kafka broker Options.Kafka names.
func (s *Sandbox) startBroker() error {
	if s.opts.Kafka == KafkaApache {
		s.progress("starting Kafka (Apache Kafka %s, a JVM) with data in %s, log in %s", kafkabroker.Version, s.layout.KafkaApache(), s.kafkaLog())
	} else {
		s.progress("starting Kafka (kfake) with data in %s", s.layout.Kafka())
	}
	kafkaStart := time.Now()
	if err := s.StartKafka(); err != nil {
		return err
	}
	if s.opts.Kafka == KafkaApache {
		s.progress("Apache Kafka %s ready on %s in %s (pid %d)", kafkabroker.Version, s.kafkaAddr, time.Since(kafkaStart).Round(100*time.Millisecond), s.apache.PID())
	}
	return nil
}

// startOperator runs the operator in this process until runCtx ends; its
// error arrives on OperatorDone.
func (s *Sandbox) startOperator(runCtx context.Context, opCfg *rest.Config) error {
	s.progress("starting the operator and the pod runner (logs in %s)", s.layout.Logs())
	if err := s.setupOperatorLog(); err != nil {
		return err
	}
	s.opDone = make(chan error, 1)
	go func() {
		s.opDone <- operator.Run(runCtx, opCfg, operator.Options{
			MetricsAddr:             "0",
			ProbeAddr:               "0",
			MaxConcurrentReconciles: 4,
			DefaultPollInterval:     s.opts.DefaultPollInterval,
			// The demo and `kubectl get -w` in the sandbox show every
			// poll; a handful of consumers costs the local API server
			// little.
			StatusInterval: time.Second,
			// Tests run one sandbox after another in one process, each
			// with its own operator and its own controller names.
			SkipNameValidation: true,
		})
	}()
	return nil
}

// startPodRunner starts the pod runner, which plays the kubelet for the
// handler pods, until runCtx ends.
func (s *Sandbox) startPodRunner(runCtx context.Context) error {
	images, err := LoadImageMap(s.opts.Root, s.opts.BinDir, s.opts.ImagesFile)
	if err != nil {
		return err
	}
	s.runner = NewPodRunner(s.Config, images, s.layout, s.pids, ctrl.Log.WithName("podrunner"))
	return s.runner.Start(runCtx)
}

// OperatorDone is closed with the operator's error if it stops.
func (s *Sandbox) OperatorDone() <-chan error { return s.opDone }

func (s *Sandbox) setupOperatorLog() error {
	if err := os.MkdirAll(s.layout.Logs(), 0o755); err != nil {
		return err
	}
	f, err := os.OpenFile(filepath.Join(s.layout.Logs(), "operator.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	s.logFile = f
	ctrl.SetLogger(zap.New(zap.UseDevMode(true), zap.WriteTo(f)))
	return nil
}

// checkNotRunning refuses to start over a sandbox whose processes still run.
func (s *Sandbox) checkNotRunning() error {
	entries, err := s.pids.read()
	if err != nil {
		return fmt.Errorf("%w: remove %s if no sandbox runs", err, s.layout.PIDs())
	}
	var alive []string
	for _, e := range entries {
		if e.alive() {
			alive = append(alive, fmt.Sprintf("%s (pid %d)", e.Name, e.PID))
		}
	}
	if len(alive) > 0 {
		return fmt.Errorf("a sandbox is already running in %s: %s; stop it with `lagscale sandbox down --dir %s`", s.layout.Dir, strings.Join(alive, ", "), s.layout.Dir)
	}
	// Every recorded process is gone: the file is stale.
	if err := os.Remove(s.layout.PIDs()); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}

// KafkaKind is the broker the sandbox runs: KafkaKfake or KafkaApache.
func (s *Sandbox) KafkaKind() string { return s.opts.Kafka }

// StartKafka starts the broker (again) with the same data directory.
func (s *Sandbox) StartKafka() error {
	s.kafkaMu.Lock()
	defer s.kafkaMu.Unlock()
	if s.opts.Kafka == KafkaApache {
		return s.startApache()
	}
	if s.kafka != nil {
		return nil
	}
	port := s.opts.KafkaPort
	if s.kafkaAddr != "" {
		// A restart keeps the address the handlers and the operator use.
		_, p, _ := strings.Cut(s.kafkaAddr, ":")
		// An unparsable port leaves 0: kfake then picks a free one.
		_, _ = fmt.Sscan(p, &port)
	}
	c, err := kfake.NewCluster(
		kfake.NumBrokers(1),
		kfake.Ports(port),
		kfake.DataDir(s.layout.Kafka()),
		kfake.ClusterID("lagscale-sandbox"),
	)
	if err != nil {
		if strings.Contains(err.Error(), "address already in use") {
			return fmt.Errorf("port %d (Kafka) is already in use: stop what listens there or pass --kafka-port with a free port", port)
		}
		return fmt.Errorf("start kfake with data in %s: %w (if the data is stale, remove it with `rm -rf %s`)", s.layout.Kafka(), err, s.layout.Kafka())
	}
	s.kafka = c
	s.kafkaAddr = c.ListenAddrs()[0]
	return nil
}

func (s *Sandbox) kafkaLog() string { return filepath.Join(s.layout.Logs(), "kafka.log") }

// startApache starts Apache Kafka, the first time configuring it on
// KafkaPort (its other listeners on free ports) with data in
// DIR/kafka-apache. Its PID is in DIR/pids from launch until it exits, so
// `sandbox down` stops it even while it is still starting.
func (s *Sandbox) startApache() error {
	if s.apache != nil && s.apache.PID() != 0 {
		return nil
	}
	if s.apache == nil {
		libs, err := kafkabroker.LibsDir(s.opts.BinDir, kafkabroker.Version)
		if err != nil {
			return err
		}
		if err := os.MkdirAll(s.layout.Logs(), 0o755); err != nil {
			return err
		}
		cfg := kafkabroker.Config{
			Version: kafkabroker.Version, Libs: libs,
			Dir: s.layout.KafkaApache(), LogPath: s.kafkaLog(),
			Started: func(pid int) error { return s.pids.add("kafka", pid) },
			Exited:  func(pid int) { _ = s.pids.remove(pid) },
		}
		if s.opts.KafkaPort != 0 {
			cfg.Plain = fmt.Sprintf("127.0.0.1:%d", s.opts.KafkaPort)
		}
		b, err := kafkabroker.New(context.Background(), cfg)
		if err != nil {
			return err
		}
		s.apache = b
		s.kafkaAddr = b.Plain
	}
	if err := s.apache.Start(context.Background()); err != nil {
		return fmt.Errorf("%w (if the data in %s is stale, remove it with `rm -rf %s`)", err, s.layout.KafkaApache(), s.layout.KafkaApache())
	}
	return nil
}

// StopKafka stops the broker (Apache Kafka by its PID); its data stays
// for StartKafka.
func (s *Sandbox) StopKafka() {
	s.kafkaMu.Lock()
	defer s.kafkaMu.Unlock()
	if s.kafka != nil {
		s.kafka.Close()
		s.kafka = nil
	}
	if s.apache != nil {
		s.apache.Stop()
	}
}

// Stop stops everything Up started, in reverse order, each by PID, and
// returns what it stopped. It is safe to call more than once.
func (s *Sandbox) Stop() []string {
	var stopped []string
	s.stopped.Do(func() {
		if s.runner != nil {
			stopped = append(stopped, s.runner.StopAll()...)
		}
		if s.cancel != nil {
			s.cancel()
			op := "operator (in process)"
			select {
			case err := <-s.opDone:
				if err != nil && !errors.Is(err, context.Canceled) {
					op += ", exited with: " + err.Error()
				}
			case <-time.After(15 * time.Second):
			}
			stopped = append(stopped, op)
		}
		if s.kafka != nil {
			s.StopKafka()
			stopped = append(stopped, "kafka (in process, "+s.kafkaAddr+")")
		}
		if s.apache != nil {
			if pid := s.apache.PID(); pid != 0 {
				how := "SIGTERM"
				if s.apache.Stop() {
					how = "SIGKILL"
				}
				stopped = append(stopped, fmt.Sprintf("kafka (Apache Kafka %s, pid %d, %s)", kafkabroker.Version, pid, how))
			}
		}
		for i := len(s.children) - 1; i >= 0; i-- {
			c := s.children[i]
			if c.exited() {
				continue
			}
			how := "SIGTERM"
			if c.stop(10 * time.Second) {
				how = "SIGKILL"
			}
			stopped = append(stopped, fmt.Sprintf("%s (pid %d, %s)", c.name, c.cmd.Process.Pid, how))
		}
		_ = s.pids.remove(os.Getpid())
		if s.logFile != nil {
			ctrl.SetLogger(logr.Discard())
			s.logFile.Close()
		}
	})
	return stopped
}

// Down stops the sandbox in dir from another process: it sends SIGTERM to
// `up` (which stops its children in order), then stops whatever recorded
// process is still alive. It returns one line per process stopped.
func Down(dir string) ([]string, error) {
	if dir == "" {
		dir = DefaultDir()
	}
	l := layout{Dir: dir}
	f := &pidFile{path: l.PIDs()}
	entries, err := f.read()
	if err != nil {
		return nil, err
	}
	var out []string
	var before []pidEntry
	for _, e := range entries {
		if e.alive() {
			before = append(before, e)
		}
	}
	for _, e := range before {
		if e.Name != "sandbox" {
			continue
		}
		how := "SIGTERM"
		if stopPID(e, 60*time.Second) {
			how = "SIGKILL"
		}
		out = append(out, fmt.Sprintf("sandbox supervisor (pid %d, %s)", e.PID, how))
		// What the supervisor stopped on its way out.
		for _, c := range before {
			if c.Name != "sandbox" && !c.alive() {
				out = append(out, fmt.Sprintf("%s (pid %d, by the supervisor)", c.Name, c.PID))
			}
		}
	}
	// Whatever the supervisor did not stop (it crashed, or was killed).
	entries, err = f.read()
	if err != nil {
		return out, err
	}
	for _, e := range entries {
		if !e.alive() {
			continue
		}
		how := "SIGTERM"
		if stopPID(e, 10*time.Second) {
			how = "SIGKILL"
		}
		out = append(out, fmt.Sprintf("%s (pid %d, %s)", e.Name, e.PID, how))
	}
	if err := os.Remove(l.PIDs()); err != nil && !errors.Is(err, os.ErrNotExist) {
		return out, err
	}
	return out, nil
}

// RecordedPIDs returns the processes DIR/pids lists, for tests.
func RecordedPIDs(dir string) ([]int, error) {
	entries, err := readPIDFile(layout{Dir: dir}.PIDs())
	var pids []int
	for _, e := range entries {
		pids = append(pids, e.PID)
	}
	return pids, err
}
