package sandbox

import (
	"bufio"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// A child is a process the sandbox started and supervises.
type child struct {
	name string
	cmd  *exec.Cmd
	log  string
	done chan struct{}
	err  error
}

// startChild starts bin with args in its own process group, output to
// logs/NAME.log, and records it in the pid file until it exits.
func (s *Sandbox) startChild(name, bin string, args ...string) (*child, error) {
	if err := os.MkdirAll(s.layout.Logs(), 0o755); err != nil {
		return nil, err
	}
	logPath := filepath.Join(s.layout.Logs(), name+".log")
	f, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(f, "\n==== %s %s %s\n", time.Now().Format(time.RFC3339), bin, strings.Join(args, " "))
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.Dir = s.layout.Dir
	cmd.Env = os.Environ()
	// Its own process group: Ctrl-C in the terminal reaches only `up`,
	// which stops the children in order; and a kill reaches grandchildren.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
	if err := cmd.Start(); err != nil {
		f.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	c := &child{name: name, cmd: cmd, log: logPath, done: make(chan struct{})}
	if err := s.pids.add(name, cmd.Process.Pid); err != nil {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		f.Close()
		return nil, err
	}
	go func() {
		c.err = cmd.Wait()
		f.Close()
		_ = s.pids.remove(cmd.Process.Pid)
		close(c.done)
	}()
	s.children = append(s.children, c)
	return c, nil
}

// stop sends SIGTERM, waits up to grace, then SIGKILL.
func (c *child) stop(grace time.Duration) (killed bool) {
	select {
	case <-c.done:
		return false
	default:
	}
	_ = syscall.Kill(-c.cmd.Process.Pid, syscall.SIGTERM)
	select {
	case <-c.done:
		return false
	case <-time.After(grace):
	}
	_ = syscall.Kill(-c.cmd.Process.Pid, syscall.SIGKILL)
	<-c.done
	return true
}

func (c *child) exited() bool {
	select {
	case <-c.done:
		return true
	default:
		return false
	}
}

// exitError describes a child that exited early, with the last line of its
// log, which usually says why.
func (c *child) exitError() error {
	return fmt.Errorf("%s exited (%v); last log line: %s; full log: %s", c.name, c.err, lastLine(c.log), c.log)
}

func lastLine(path string) string {
	f, err := os.Open(path)
	if err != nil {
		return "(no log)"
	}
	defer f.Close()
	var last string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		if t := strings.TrimSpace(sc.Text()); t != "" {
			last = t
		}
	}
	if len(last) > 300 {
		last = last[:300] + "..."
	}
	return last
}

// waitHTTP polls url until it answers 200, the child exits or the timeout
// passes.
func waitHTTP(ctx context.Context, c *child, url string, client *http.Client, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		resp, err := client.Get(url)
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		if c.exited() {
			return c.exitError()
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s not ready after %s (last error: %v); see %s", c.name, timeout, err, c.log)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// startControlPlane starts etcd, kube-apiserver, kube-controller-manager,
// kube-scheduler and kwok, waiting for each to be usable.
func (s *Sandbox) startControlPlane(ctx context.Context) error {
	etcdURL, err := s.startEtcd(ctx)
	if err != nil {
		return err
	}
	if err := s.startAPIServer(ctx, etcdURL); err != nil {
		return err
	}
	return s.startControllers(ctx)
}

// k8sBin is the path of a control plane binary built by `make test-env`.
func (s *Sandbox) k8sBin(name string) string {
	return filepath.Join(s.opts.BinDir, "k8s", KubernetesVersion, name)
}

// startEtcd starts etcd on two free ports and returns its client URL once
// it is healthy.
func (s *Sandbox) startEtcd(ctx context.Context) (string, error) {
	etcdClient, err := freePort()
	if err != nil {
		return "", err
	}
	etcdPeer, err := freePort()
	if err != nil {
		return "", err
	}
	etcdURL := "http://127.0.0.1:" + strconv.Itoa(etcdClient)
	peerURL := "http://127.0.0.1:" + strconv.Itoa(etcdPeer)
	s.progress("starting etcd")
	etcd, err := s.startChild("etcd", s.k8sBin("etcd"),
		"--name=sandbox",
		"--data-dir="+s.layout.Etcd(),
		"--listen-client-urls="+etcdURL,
		"--advertise-client-urls="+etcdURL,
		"--listen-peer-urls="+peerURL,
		"--initial-advertise-peer-urls="+peerURL,
		"--initial-cluster=sandbox="+peerURL,
		"--unsafe-no-fsync=true",
		"--log-level=warn",
	)
	if err != nil {
		return "", err
	}
	if err := waitHTTP(ctx, etcd, etcdURL+"/health", http.DefaultClient, 60*time.Second); err != nil {
		return "", err
	}
	return etcdURL, nil
}

// startAPIServer starts kube-apiserver on s.apiPort and, once it is ready,
// writes the admin kubeconfig the other components and clients use.
func (s *Sandbox) startAPIServer(ctx context.Context, etcdURL string) error {
	s.progress("starting kube-apiserver")
	apiURL := "https://127.0.0.1:" + strconv.Itoa(s.apiPort)
	apiserver, err := s.startChild("kube-apiserver", s.k8sBin("kube-apiserver"),
		"--etcd-servers="+etcdURL,
		"--bind-address=127.0.0.1",
		"--advertise-address=127.0.0.1",
		"--secure-port="+strconv.Itoa(s.apiPort),
		"--tls-cert-file="+s.pki.ServingCert,
		"--tls-private-key-file="+s.pki.ServingKey,
		"--client-ca-file="+s.pki.CACert,
		"--authorization-mode=RBAC",
		"--service-account-issuer=https://kubernetes.default.svc.cluster.local",
		"--service-account-key-file="+s.pki.SAPub,
		"--service-account-signing-key-file="+s.pki.SAKey,
		"--service-cluster-ip-range=10.96.0.0/16",
		"--allow-privileged=true",
		// Loopback cannot back the kubernetes Service's endpoints.
		"--endpoint-reconciler-type=none",
		"--enable-priority-and-fairness=false",
		"--profiling=false",
		"--v=1",
	)
	if err != nil {
		return err
	}
	tlsCfg, err := s.adminTLS()
	if err != nil {
		return err
	}
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: tlsCfg}, Timeout: 2 * time.Second}
	if err := waitHTTP(ctx, apiserver, apiURL+"/readyz", hc, 90*time.Second); err != nil {
		return err
	}
	return os.WriteFile(s.layout.Kubeconfig(), kubeconfig(apiURL, s.pki), 0o600)
}

// startControllers starts kube-controller-manager, kube-scheduler and
// kwok, and gives them a moment to fail on a bad flag, so that the error
// names the component instead of a later timeout.
func (s *Sandbox) startControllers(ctx context.Context) error {
	s.progress("starting kube-controller-manager, kube-scheduler and kwok")
	kubeconfigFlags := []string{
		"--kubeconfig=" + s.layout.Kubeconfig(),
		"--authentication-kubeconfig=" + s.layout.Kubeconfig(),
		"--authorization-kubeconfig=" + s.layout.Kubeconfig(),
		"--bind-address=127.0.0.1",
		"--secure-port=0",
		"--leader-elect=false",
	}
	kcm, err := s.startChild("kube-controller-manager", s.k8sBin("kube-controller-manager"), append(kubeconfigFlags,
		"--controllers=deployment-controller,replicaset-controller,garbage-collector-controller,node-lifecycle-controller,serviceaccount-controller,serviceaccount-token-controller,namespace-controller,root-ca-certificate-publisher-controller",
		"--service-account-private-key-file="+s.pki.SAKey,
		"--root-ca-file="+s.pki.CACert,
		"--use-service-account-credentials=false",
		"--node-monitor-grace-period=60s",
		"--v=1",
	)...)
	if err != nil {
		return err
	}
	sched, err := s.startChild("kube-scheduler", s.k8sBin("kube-scheduler"), append(kubeconfigFlags, "--v=1")...)
	if err != nil {
		return err
	}
	stages, err := s.writeKwokConfig()
	if err != nil {
		return err
	}
	kwok, err := s.startChild("kwok", filepath.Join(s.opts.BinDir, "kwok"),
		"--kubeconfig="+s.layout.Kubeconfig(),
		"--config="+stages,
		"--manage-all-nodes=false",
		"--manage-nodes-with-annotation-selector="+kwokNodeAnnotation+"=fake",
		"--cidr=10.244.0.0/16",
		"--node-ip=127.0.0.1",
	)
	if err != nil {
		return err
	}
	select {
	case <-time.After(1500 * time.Millisecond):
	case <-ctx.Done():
		return ctx.Err()
	}
	for _, c := range []*child{kcm, sched, kwok} {
		if c.exited() {
			return c.exitError()
		}
	}
	return nil
}

func (s *Sandbox) adminTLS() (*tls.Config, error) {
	cert, err := tls.LoadX509KeyPair(s.pki.AdminCert, s.pki.AdminKey)
	if err != nil {
		return nil, err
	}
	// The serving certificate is checked through the rest config later;
	// this probe only waits for readiness on loopback.
	return &tls.Config{Certificates: []tls.Certificate{cert}, InsecureSkipVerify: true}, nil //nolint:gosec // loopback readiness probe
}

// kwokNodeAnnotation marks the nodes kwok manages.
const kwokNodeAnnotation = "kwok.x-k8s.io/node"

// kwokStages are the Stage files of sigs.k8s.io/kwok's kustomize/stage that
// `make sandbox-tools` copies into bin/kwok-stages. pod-delete is left out
// on purpose: the pod runner removes a deleted pod once its process has
// stopped, as a kubelet does, instead of kwok removing it at once.
var kwokStages = []string{"node-initialize.yaml", "node-heartbeat.yaml", "pod-ready.yaml", "pod-complete.yaml"}

// writeKwokConfig concatenates the stages into DIR/kwok.yaml.
func (s *Sandbox) writeKwokConfig() (string, error) {
	var b strings.Builder
	for _, name := range kwokStages {
		raw, err := os.ReadFile(filepath.Join(s.opts.BinDir, "kwok-stages", name))
		if err != nil {
			return "", fmt.Errorf("kwok stage %s missing in %s: run `make sandbox-tools`", name, filepath.Join(s.opts.BinDir, "kwok-stages"))
		}
		b.WriteString("---\n")
		b.Write(raw)
		b.WriteString("\n")
	}
	path := s.layout.path("kwok.yaml")
	return path, os.WriteFile(path, []byte(b.String()), 0o644)
}
