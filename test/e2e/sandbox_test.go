//go:build e2e

package e2e

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/lagscale/lagscale/internal/sandbox"
	"github.com/lagscale/lagscale/internal/scheme"
)

func freePort(t *testing.T) int {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// TestSandboxBurstScalesAndDrains runs `lagscale sandbox up` as a user
// would, drives a burst through the example handler and checks the whole
// loop, then `lagscale sandbox down` and that no process is left.
func TestSandboxBurstScalesAndDrains(t *testing.T) {
	r := root(t)
	requireTools(t, r)
	dir := t.TempDir()
	kafkaPort := freePort(t)
	bootstrap := fmt.Sprintf("127.0.0.1:%d", kafkaPort)

	// `up` in its own process group, output to a file.
	outPath := filepath.Join(dir, "up.out")
	out, err := os.Create(outPath)
	if err != nil {
		t.Fatal(err)
	}
	up := exec.Command(filepath.Join(r, "bin", "lagscale"), "sandbox", "up", "--dir", dir, "--kafka-port", fmt.Sprint(kafkaPort), "--api-port", "0", "--no-build")
	up.Dir = r
	up.Stdout, up.Stderr = out, out
	up.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := up.Start(); err != nil {
		t.Fatal(err)
	}
	upDone := make(chan error, 1)
	go func() { upDone <- up.Wait(); out.Close() }()
	seen := map[int]bool{up.Process.Pid: true}
	record := func() {
		pids, _ := sandbox.RecordedPIDs(dir)
		for _, p := range pids {
			seen[p] = true
		}
	}
	// Whatever happens, nothing stays behind: down, then SIGKILL to what
	// is still alive among every PID this test saw.
	t.Cleanup(func() {
		record()
		_, _ = sandbox.Down(dir)
		select {
		case err := <-upDone:
			if err != nil {
				t.Logf("sandbox up exited: %v", err)
			}
		case <-time.After(30 * time.Second):
			_ = syscall.Kill(-up.Process.Pid, syscall.SIGKILL)
		}
		var all []int
		for p := range seen {
			all = append(all, p)
		}
		for _, p := range alivePIDs(all) {
			_ = syscall.Kill(p, syscall.SIGKILL)
		}
		if t.Failed() {
			b, _ := os.ReadFile(outPath)
			t.Logf("sandbox up output:\n%s", b)
		}
	})

	start := time.Now()
	eventually(t, 3*time.Minute, "sandbox up prints the kubeconfig", func() (bool, string) {
		b, _ := os.ReadFile(outPath)
		select {
		case err := <-upDone:
			t.Fatalf("sandbox up exited early (%v):\n%s", err, b)
		default:
		}
		return strings.Contains(string(b), "export KUBECONFIG="+filepath.Join(dir, "kubeconfig")), string(b)
	})
	t.Logf("sandbox up in %s", time.Since(start).Round(100*time.Millisecond))
	record()

	cfg, err := clientcmd.BuildConfigFromFlags("", filepath.Join(dir, "kubeconfig"))
	if err != nil {
		t.Fatal(err)
	}
	c, err := client.New(cfg, client.Options{Scheme: scheme.New()})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()

	const (
		topic   = "e2e-orders"
		target  = 10 // maxLagSeconds
		poll    = 2  // pollIntervalSeconds
		stabil  = 20 // scaleDownStabilizationSeconds
		workMS  = 50 // 20 records/s per partition: 240/s for the whole group, far below the burst
		parts   = 12
		ns      = "default"
		name    = "e2e"
		handled = "handled.log"
	)
	if err := sandbox.CreateTopic(ctx, bootstrap, topic, parts); err != nil {
		t.Fatal(err)
	}
	handledLog := filepath.Join(dir, handled)
	ec := sandbox.DemoConsumer(sandbox.DemoOptions{
		Namespace: ns, Name: name, Topic: topic, Partitions: parts, WorkMS: workMS,
		ScaleDownStabilizationSeconds: stabil, PollIntervalSeconds: poll,
	}, bootstrap)
	ec.Spec.Scaling.MaxLagSeconds = ptr.To[int32](target)
	ec.Spec.Handler.Env = append(ec.Spec.Handler.Env, corev1.EnvVar{Name: "HANDLED_LOG", Value: handledLog})
	if err := c.Create(ctx, ec); err != nil {
		t.Fatal(err)
	}

	eventually(t, 2*time.Minute, "the Deployment gets a Running pod whose handler joins the group", func() (bool, string) {
		var pods corev1.PodList
		_ = c.List(ctx, &pods, client.InNamespace(ns), client.MatchingLabels{"lagscale.dev/consumer": name})
		running := 0
		for _, p := range pods.Items {
			if p.Status.Phase == corev1.PodRunning {
				running++
			}
		}
		cur := getEC(t, c, ns, name)
		ok := running >= 1 && cur != nil && cur.Status.Lag != nil && cur.Status.Lag.Members >= 1
		return ok, fmt.Sprintf("running pods=%d; %s", running, describe(cur))
	})
	record()

	// desiredReplicas before any load: the rise is measured from here.
	startDesired := getEC(t, c, ns, name).Status.DesiredReplicas

	// Steady load a single replica handles, then a burst far above what the
	// group can handle at once, then nothing.
	produceN(ctx, t, bootstrap, topic, 1000, 100)
	burstDone := make(chan struct{})
	go func() { defer close(burstDone); produceN(ctx, t, bootstrap, topic, 20000, 1000) }()

	// Watch status: when the time lag first crosses the target and when
	// desiredReplicas first rises, both by the status' lag timestamps.
	var (
		crossedAt, rosePollAt time.Time
		maxDesired            int32
	)
	eventually(t, 3*time.Minute, "desiredReplicas rises after the time lag crosses the target", func() (bool, string) {
		cur := getEC(t, c, ns, name)
		if cur == nil || cur.Status.Lag == nil || cur.Status.Lag.Updated == nil {
			return false, describe(cur)
		}
		at := cur.Status.Lag.Updated.Time
		if crossedAt.IsZero() && cur.Status.Lag.Seconds > target {
			crossedAt = at
		}
		if rosePollAt.IsZero() && cur.Status.DesiredReplicas > startDesired {
			rosePollAt = at
		}
		maxDesired = max(maxDesired, cur.Status.DesiredReplicas)
		return !crossedAt.IsZero() && !rosePollAt.IsZero(), describe(cur)
	})
	if late := rosePollAt.Sub(crossedAt); late > 2*poll*time.Second {
		t.Fatalf("desiredReplicas rose %s after the time lag crossed %ds: want within two poll intervals (%ds)", late, target, 2*poll)
	}
	t.Logf("time lag crossed %ds at %s; desiredReplicas rose at %s (from %d)", target, crossedAt.Format(time.TimeOnly), rosePollAt.Format(time.TimeOnly), startDesired)

	eventually(t, 2*time.Minute, "the pod runner runs one handler per desired replica and they all join the group", func() (bool, string) {
		cur := getEC(t, c, ns, name)
		if cur == nil || cur.Status.Lag == nil {
			return false, describe(cur)
		}
		maxDesired = max(maxDesired, cur.Status.DesiredReplicas)
		record()
		procs := len(alivePIDs(handlerPIDs(dir)))
		want := int(cur.Status.DesiredReplicas)
		return want > 1 && procs == want && int(cur.Status.Lag.Members) == want,
			fmt.Sprintf("handler processes=%d; %s", procs, describe(cur))
	})

	<-burstDone
	eventually(t, 8*time.Minute, "the lag drains", func() (bool, string) {
		cur := getEC(t, c, ns, name)
		record()
		return cur != nil && cur.Status.Lag != nil && cur.Status.Lag.Total == 0 && cur.Status.Lag.Updated != nil, describe(cur)
	})
	eventually(t, time.Duration(stabil)*time.Second+3*time.Minute, "replicas return to minReplicas after the stabilization window", func() (bool, string) {
		cur := getEC(t, c, ns, name)
		record()
		return cur != nil && cur.Status.DesiredReplicas == 1 && cur.Status.Replicas == 1 && len(alivePIDs(handlerPIDs(dir))) == 1, describe(cur)
	})

	ends := endOffsets(t, bootstrap, topic)
	h, produced := checkAllHandled(t, handledLog, topic, ends)
	if produced != 21000 {
		t.Fatalf("topic holds %d records, want the 21000 produced", produced)
	}
	t.Logf("%d records produced, %d handled (with redeliveries), at most %d replicas", produced, h, maxDesired)

	// down, by PID; then nothing this test saw may be alive.
	record()
	downOut, err := exec.Command(filepath.Join(r, "bin", "lagscale"), "sandbox", "down", "--dir", dir).CombinedOutput()
	if err != nil {
		t.Fatalf("sandbox down: %v\n%s", err, downOut)
	}
	t.Logf("sandbox down:\n%s", downOut)
	select {
	case err := <-upDone:
		t.Logf("sandbox up exited after sandbox down: %v", err)
	case <-time.After(90 * time.Second):
		t.Fatal("sandbox up still running 90s after sandbox down")
	}
	var all []int
	for p := range seen {
		all = append(all, p)
	}
	if left := alivePIDs(all); len(left) > 0 {
		t.Fatalf("processes left behind after sandbox down: %v", left)
	}
	// Every handler that ever ran printed its summary on SIGTERM.
	sum, n := summaries(t, dir)
	if sum < produced {
		t.Fatalf("handler summaries add up to %d handled records from %d handlers, want at least %d", sum, n, produced)
	}
	sc := bufio.NewScanner(strings.NewReader(string(downOut)))
	for sc.Scan() {
		if !strings.HasPrefix(sc.Text(), "stopped ") {
			t.Fatalf("unexpected line from sandbox down: %q", sc.Text())
		}
	}
}
