package testenv

import (
	"bufio"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestOrphansAreReaped starts a child test process that brings up the
// control plane and then dies the way a panic or a -timeout kills a test
// binary (no cleanup runs). The next Start must stop what it left.
func TestOrphansAreReaped(t *testing.T) {
	if os.Getenv("LAGSCALE_TESTENV_CHILD") == "1" {
		env, err := Start()
		if err != nil {
			t.Fatal(err)
		}
		pids := processesWith([]string{env.Env.ControlPlane.APIServer.CertDir, env.Env.ControlPlane.Etcd.DataDir})
		for _, p := range pids {
			os.Stdout.WriteString("PID " + strconv.Itoa(p) + "\n")
		}
		os.Stdout.Sync()
		os.Exit(3) // no Stop, no cleanup
	}

	cmd := exec.Command(os.Args[0], "-test.run", "^TestOrphansAreReaped$", "-test.count=1")
	cmd.Env = append(os.Environ(), "LAGSCALE_TESTENV_CHILD=1")
	out, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var pids []int
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		if p, ok := strings.CutPrefix(sc.Text(), "PID "); ok {
			n, _ := strconv.Atoi(p)
			pids = append(pids, n)
		}
	}
	_ = cmd.Wait()
	if len(pids) < 2 {
		t.Fatalf("the child reported control-plane PIDs %v, want etcd and kube-apiserver", pids)
	}
	t.Cleanup(func() {
		for _, p := range pids {
			_ = syscall.Kill(p, syscall.SIGKILL)
		}
	})
	for _, p := range pids {
		if !alive(p) {
			t.Fatalf("pid %d is already gone; the test proves nothing", p)
		}
	}

	env, err := Start()
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := env.Stop(); err != nil {
			t.Errorf("stopping the control plane: %v", err)
		}
	}()
	deadline := time.Now().Add(10 * time.Second)
	for _, p := range pids {
		for alive(p) && !zombie(p) {
			if time.Now().After(deadline) {
				t.Fatalf("orphaned control-plane process %d still runs after the next Start", p)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
}

// zombie reports a process that has exited but not been waited for; its
// parent (init) reaps it.
func zombie(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return true
	}
	f := strings.Fields(string(b))
	return len(f) > 2 && f[2] == "Z"
}
