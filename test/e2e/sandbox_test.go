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
	sb := startSandboxUp(t, r)
	c := sb.waitUp(t)
	ctx := context.Background()

	handledLog := sb.createBurstConsumer(ctx, t, c)
	sb.waitHandlerJoins(ctx, t, c)
	// desiredReplicas before any load: the rise is measured from here.
	startDesired := getEC(t, c, e2eNamespace, e2eName).Status.DesiredReplicas

	// Steady load a single replica handles, then a burst far above what the
	// group can handle at once, then nothing.
	produceN(ctx, t, sb.bootstrap, e2eTopic, 1000, 100)
	burstDone := make(chan struct{})
	go func() { defer close(burstDone); produceN(ctx, t, sb.bootstrap, e2eTopic, 20000, 1000) }()
	maxDesired := sb.checkScalesUp(t, c, startDesired)
	<-burstDone
	sb.checkDrainsAndScalesIn(t, c)

	ends := endOffsets(t, sb.bootstrap, e2eTopic)
	h, produced := checkAllHandled(t, handledLog, e2eTopic, ends)
	if produced != 21000 {
		t.Fatalf("topic holds %d records, want the 21000 produced", produced)
	}
	t.Logf("%d records produced, %d handled (with redeliveries), at most %d replicas", produced, h, maxDesired)
	sb.downLeavesNothing(t, produced)
}

// The burst test's consumer: 12 partitions, a 10 s time-lag target, a
// 2 s poll and a 20 s stabilization window; each handler takes 50 ms a
// record, 20 records/s per partition: 240/s for the whole group, far
// below the burst.
const (
	e2eTopic     = "e2e-orders"
	e2eTarget    = 10 // maxLagSeconds
	e2ePoll      = 2  // pollIntervalSeconds
	e2eStabilize = 20 // scaleDownStabilizationSeconds
	e2eWorkMS    = 50
	e2eParts     = 12
	e2eNamespace = "default"
	e2eName      = "e2e"
)

// upSandbox is a `lagscale sandbox up` the test started, and every PID it
// has seen, so that nothing stays behind.
type upSandbox struct {
	r, dir, outPath string
	bootstrap       string
	up              *exec.Cmd
	upDone          chan error
	seen            map[int]bool
}

// startSandboxUp starts `lagscale sandbox up` in its own process group,
// output to a file, and registers a cleanup that runs down, then SIGKILLs
// what is still alive among every PID the test saw.
func startSandboxUp(t *testing.T, r string) *upSandbox {
	dir := t.TempDir()
	kafkaPort := freePort(t)
	sb := &upSandbox{r: r, dir: dir, outPath: filepath.Join(dir, "up.out"), bootstrap: fmt.Sprintf("127.0.0.1:%d", kafkaPort), upDone: make(chan error, 1)}
	out, err := os.Create(sb.outPath)
	if err != nil {
		t.Fatal(err)
	}
	sb.up = exec.Command(filepath.Join(r, "bin", "lagscale"), "sandbox", "up", "--dir", dir, "--kafka-port", fmt.Sprint(kafkaPort), "--api-port", "0", "--no-build")
	sb.up.Dir = r
	sb.up.Stdout, sb.up.Stderr = out, out
	sb.up.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := sb.up.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { sb.upDone <- sb.up.Wait(); out.Close() }()
	sb.seen = map[int]bool{sb.up.Process.Pid: true}
	t.Cleanup(func() {
		sb.record()
		_, _ = sandbox.Down(dir)
		select {
		case err := <-sb.upDone:
			if err != nil {
				t.Logf("sandbox up exited: %v", err)
			}
		case <-time.After(30 * time.Second):
			_ = syscall.Kill(-sb.up.Process.Pid, syscall.SIGKILL)
		}
		for _, p := range alivePIDs(sb.seenPIDs()) {
			_ = syscall.Kill(p, syscall.SIGKILL)
		}
		if t.Failed() {
			b, _ := os.ReadFile(sb.outPath)
			t.Logf("sandbox up output:\n%s", b)
		}
	})
	return sb
}

// record adds the PIDs the sandbox has recorded to those seen.
func (sb *upSandbox) record() {
	pids, _ := sandbox.RecordedPIDs(sb.dir)
	for _, p := range pids {
		sb.seen[p] = true
	}
}

func (sb *upSandbox) seenPIDs() []int {
	var all []int
	for p := range sb.seen {
		all = append(all, p)
	}
	return all
}

// waitUp waits for `up` to print the kubeconfig and returns a client.
func (sb *upSandbox) waitUp(t *testing.T) client.Client {
	start := time.Now()
	eventually(t, 3*time.Minute, "sandbox up prints the kubeconfig", func() (bool, string) {
		b, _ := os.ReadFile(sb.outPath)
		select {
		case err := <-sb.upDone:
			t.Fatalf("sandbox up exited early (%v):\n%s", err, b)
		default:
		}
		return strings.Contains(string(b), "export KUBECONFIG="+filepath.Join(sb.dir, "kubeconfig")), string(b)
	})
	t.Logf("sandbox up in %s", time.Since(start).Round(100*time.Millisecond))
	sb.record()
	cfg, err := clientcmd.BuildConfigFromFlags("", filepath.Join(sb.dir, "kubeconfig"))
	if err != nil {
		t.Fatal(err)
	}
	c, err := client.New(cfg, client.Options{Scheme: scheme.New()})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// createBurstConsumer creates the topic and the demo's EventConsumer with
// the burst test's settings, its handlers logging every handled record to
// the file it returns.
func (sb *upSandbox) createBurstConsumer(ctx context.Context, t *testing.T, c client.Client) string {
	if err := sandbox.CreateTopic(ctx, sb.bootstrap, e2eTopic, e2eParts); err != nil {
		t.Fatal(err)
	}
	handledLog := filepath.Join(sb.dir, "handled.log")
	ec := sandbox.DemoConsumer(sandbox.DemoOptions{
		Namespace: e2eNamespace, Name: e2eName, Topic: e2eTopic, Partitions: e2eParts, WorkMS: e2eWorkMS,
		ScaleDownStabilizationSeconds: e2eStabilize, PollIntervalSeconds: e2ePoll,
	}, sb.bootstrap)
	ec.Spec.Scaling.MaxLagSeconds = ptr.To[int32](e2eTarget)
	ec.Spec.Handler.Env = append(ec.Spec.Handler.Env, corev1.EnvVar{Name: "HANDLED_LOG", Value: handledLog})
	if err := c.Create(ctx, ec); err != nil {
		t.Fatal(err)
	}
	return handledLog
}

// waitHandlerJoins waits for a Running pod whose handler joins the group.
func (sb *upSandbox) waitHandlerJoins(ctx context.Context, t *testing.T, c client.Client) {
	eventually(t, 2*time.Minute, "the Deployment gets a Running pod whose handler joins the group", func() (bool, string) {
		var pods corev1.PodList
		_ = c.List(ctx, &pods, client.InNamespace(e2eNamespace), client.MatchingLabels{"lagscale.dev/consumer": e2eName})
		running := 0
		for _, p := range pods.Items {
			if p.Status.Phase == corev1.PodRunning {
				running++
			}
		}
		cur := getEC(t, c, e2eNamespace, e2eName)
		ok := running >= 1 && cur != nil && cur.Status.Lag != nil && cur.Status.Lag.Members >= 1
		return ok, fmt.Sprintf("running pods=%d; %s", running, describe(cur))
	})
	sb.record()
}

// checkScalesUp watches status: desiredReplicas must rise within two poll
// intervals of the time lag first crossing the target, both by the
// status' lag timestamps, and the pod runner must run one handler per
// desired replica, all in the group. It returns the most replicas seen.
func (sb *upSandbox) checkScalesUp(t *testing.T, c client.Client, startDesired int32) int32 {
	var (
		crossedAt, rosePollAt time.Time
		maxDesired            int32
	)
	eventually(t, 3*time.Minute, "desiredReplicas rises after the time lag crosses the target", func() (bool, string) {
		cur := getEC(t, c, e2eNamespace, e2eName)
		if cur == nil || cur.Status.Lag == nil || cur.Status.Lag.Updated == nil {
			return false, describe(cur)
		}
		at := cur.Status.Lag.Updated.Time
		if crossedAt.IsZero() && cur.Status.Lag.Seconds > e2eTarget {
			crossedAt = at
		}
		if rosePollAt.IsZero() && cur.Status.DesiredReplicas > startDesired {
			rosePollAt = at
		}
		maxDesired = max(maxDesired, cur.Status.DesiredReplicas)
		return !crossedAt.IsZero() && !rosePollAt.IsZero(), describe(cur)
	})
	if late := rosePollAt.Sub(crossedAt); late > 2*e2ePoll*time.Second {
		t.Fatalf("desiredReplicas rose %s after the time lag crossed %ds: want within two poll intervals (%ds)", late, e2eTarget, 2*e2ePoll)
	}
	t.Logf("time lag crossed %ds at %s; desiredReplicas rose at %s (from %d)", e2eTarget, crossedAt.Format(time.TimeOnly), rosePollAt.Format(time.TimeOnly), startDesired)

	eventually(t, 2*time.Minute, "the pod runner runs one handler per desired replica and they all join the group", func() (bool, string) {
		cur := getEC(t, c, e2eNamespace, e2eName)
		if cur == nil || cur.Status.Lag == nil {
			return false, describe(cur)
		}
		maxDesired = max(maxDesired, cur.Status.DesiredReplicas)
		sb.record()
		procs := len(alivePIDs(handlerPIDs(sb.dir)))
		want := int(cur.Status.DesiredReplicas)
		return want > 1 && procs == want && int(cur.Status.Lag.Members) == want,
			fmt.Sprintf("handler processes=%d; %s", procs, describe(cur))
	})
	return maxDesired
}

// checkDrainsAndScalesIn waits for the lag to drain and the replicas to
// return to minReplicas after the stabilization window.
func (sb *upSandbox) checkDrainsAndScalesIn(t *testing.T, c client.Client) {
	eventually(t, 8*time.Minute, "the lag drains", func() (bool, string) {
		cur := getEC(t, c, e2eNamespace, e2eName)
		sb.record()
		return cur != nil && cur.Status.Lag != nil && cur.Status.Lag.Total == 0 && cur.Status.Lag.Updated != nil, describe(cur)
	})
	eventually(t, time.Duration(e2eStabilize)*time.Second+3*time.Minute, "replicas return to minReplicas after the stabilization window", func() (bool, string) {
		cur := getEC(t, c, e2eNamespace, e2eName)
		sb.record()
		return cur != nil && cur.Status.DesiredReplicas == 1 && cur.Status.Replicas == 1 && len(alivePIDs(handlerPIDs(sb.dir))) == 1, describe(cur)
	})
}

// downLeavesNothing runs `lagscale sandbox down`, by PID: then nothing the
// test saw may be alive, `up` must exit, every handler that ever ran must
// have printed its summary on SIGTERM, and down prints only what it
// stopped.
func (sb *upSandbox) downLeavesNothing(t *testing.T, produced int64) {
	sb.record()
	downOut, err := exec.Command(filepath.Join(sb.r, "bin", "lagscale"), "sandbox", "down", "--dir", sb.dir).CombinedOutput()
	if err != nil {
		t.Fatalf("sandbox down: %v\n%s", err, downOut)
	}
	t.Logf("sandbox down:\n%s", downOut)
	select {
	case err := <-sb.upDone:
		t.Logf("sandbox up exited after sandbox down: %v", err)
	case <-time.After(90 * time.Second):
		t.Fatal("sandbox up still running 90s after sandbox down")
	}
	if left := alivePIDs(sb.seenPIDs()); len(left) > 0 {
		t.Fatalf("processes left behind after sandbox down: %v", left)
	}
	sum, n := summaries(t, sb.dir)
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
