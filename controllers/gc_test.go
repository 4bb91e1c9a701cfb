package controllers

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"

	"github.com/lagscale/lagscale/api/v1alpha1"
	"github.com/lagscale/lagscale/internal/testenv"
	"github.com/lagscale/lagscale/internal/testkit"
)

// startGarbageCollector runs the real kube-controller-manager with only its
// garbage collector, which envtest does not run, and stops it by its PID
// when the test ends, pass or fail.
func startGarbageCollector(t *testing.T) {
	t.Helper()
	assets, err := testenv.AssetsDir()
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(assets, "kube-controller-manager")
	if _, err := os.Stat(bin); err != nil {
		t.Fatalf("%s not found: run `make test-env`", bin)
	}
	dir := t.TempDir()
	kubeconfig := filepath.Join(dir, "kubeconfig")
	if err := env.WriteKubeconfig(kubeconfig); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin,
		"--kubeconfig="+kubeconfig,
		"--controllers=garbagecollector",
		"--leader-elect=false",
		"--secure-port=0",
		"--use-service-account-credentials=false",
		"--concurrent-gc-syncs=5",
	)
	logf, err := os.Create(filepath.Join(dir, "kcm.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pid := cmd.Process.Pid
	untrack := testenv.Track(kubeconfig)
	t.Cleanup(func() {
		defer untrack()
		_ = syscall.Kill(-pid, syscall.SIGTERM)
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = syscall.Kill(-pid, syscall.SIGKILL)
			<-done
		}
		if t.Failed() {
			if b, err := os.ReadFile(logf.Name()); err == nil {
				t.Logf("kube-controller-manager log (tail):\n%s", testkit.Tail(string(b), 3000))
			}
		}
		logf.Close()
	})
}

// TestDeletingConsumerRemovesDeployment shows the owner reference at work
// with Kubernetes' own garbage collector: no finalizer is involved.
func TestDeletingConsumerRemovesDeployment(t *testing.T) {
	startGarbageCollector(t)
	startOperator(t, nil)
	ns := namespace(t)
	ctx := context.Background()
	ec := createConsumer(t, ns, "gone", v1alpha1.EventConsumerSpec{
		Topics: []string{"t"}, ConsumerGroup: "g",
		Kafka:   v1alpha1.KafkaConnection{BootstrapServers: []string{"localhost:9092"}},
		Handler: &v1alpha1.HandlerSpec{Image: "handler:1"},
	})
	waitDeployment(t, ns, "gone", nil)
	if err := env.Client.Delete(ctx, ec); err != nil {
		t.Fatal(err)
	}
	eventually(t, 60*time.Second, func() error {
		_, err := getDeployment(t, ns, "gone")()
		if apierrors.IsNotFound(err) {
			return nil
		}
		return fmt.Errorf("deployment still there (err %v)", err)
	})
}
