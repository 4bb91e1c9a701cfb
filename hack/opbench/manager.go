package main

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"

	"github.com/lagscale/lagscale/internal/testenv"
)

// shardNamespace holds the Leases and the bucket table of a sharded
// bench; shardGroup is the managers' leader election ID (their default).
const (
	shardNamespace = "lagscale-system"
	shardGroup     = "lagscale.lagscale.dev"
)

// managerProc is one manager under measurement, run as its own process so
// that its RSS is its alone.
type managerProc struct {
	name        string
	cmd         *exec.Cmd
	pid         int
	metricsAddr string
	pprofAddr   string
	log         string
	done        chan struct{}
}

// startManager runs a manager against env's API server, with its log in
// dir/<name>.log. Sharded, it is one member among others, named name.
func startManager(bin string, env *testenv.Env, dir, name string, poll time.Duration, sharded, pprof bool, logLevel string, extraEnv, extraArgs []string) (*managerProc, error) {
	kubeconfig := filepath.Join(dir, "kubeconfig")
	if _, err := os.Stat(kubeconfig); err != nil {
		if err := env.WriteKubeconfig(kubeconfig); err != nil {
			return nil, err
		}
	}
	metricsAddr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	probeAddr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	logf, err := os.Create(filepath.Join(dir, name+".log"))
	if err != nil {
		return nil, err
	}
	// The child has its own descriptor once started.
	defer logf.Close()
	args := []string{"--metrics-bind-address", metricsAddr, "--health-probe-bind-address", probeAddr,
		"--default-poll-interval", poll.String(), "--log-level", logLevel}
	if sharded {
		args = append(args, "--sharding", "--leader-elect=true", "--leader-election-namespace", shardNamespace, "--shard-identity", name)
	} else {
		args = append(args, "--leader-elect=false")
	}
	var pprofAddr string
	if pprof {
		if pprofAddr, err = freeAddr(); err != nil {
			return nil, err
		}
		args = append(args, "--pprof-bind-address", pprofAddr)
	}
	cmd := exec.Command(bin, append(args, extraArgs...)...)
	cmd.Env = append(append(os.Environ(), "KUBECONFIG="+kubeconfig), extraEnv...)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	m := &managerProc{name: name, cmd: cmd, pid: cmd.Process.Pid, metricsAddr: metricsAddr, pprofAddr: pprofAddr, log: logf.Name(), done: make(chan struct{})}
	go func() { _ = cmd.Wait(); close(m.done) }()
	return m, nil
}

// heapProfile writes the manager's heap profile (its /debug/pprof/heap)
// to path.
func (m *managerProc) heapProfile(path string) error {
	return m.profile("heap", path)
}

// profile writes one of the manager's /debug/pprof profiles ("heap",
// "profile?seconds=30") to path.
func (m *managerProc) profile(which, path string) error {
	if m.pprofAddr == "" {
		return fmt.Errorf("%s was started without --pprof-bind-address", m)
	}
	resp, err := http.Get("http://" + m.pprofAddr + "/debug/pprof/" + which)
	if err != nil {
		return fmt.Errorf("%s profile of %s: %w", which, m, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s profile of %s: %s", which, m, resp.Status)
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// exited says whether the process has ended.
func (m *managerProc) exited() bool {
	select {
	case <-m.done:
		return true
	default:
		return false
	}
}

// stop stops the manager by its PID, also when a step failed: SIGTERM,
// then SIGKILL after 20 s.
func (m *managerProc) stop() {
	if m.exited() {
		return
	}
	_ = m.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-m.done:
	case <-time.After(20 * time.Second):
		m.kill()
	}
}

// kill ends the manager at once, as a crash would: it releases nothing.
func (m *managerProc) kill() {
	_ = m.cmd.Process.Kill()
	<-m.done
}

func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

func (m *managerProc) String() string { return fmt.Sprintf("%s (pid %d)", m.name, m.pid) }
