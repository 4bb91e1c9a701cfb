package sandbox

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"
)

// Event reasons the pod runner records on pods, after the kubelet's.
const (
	EventStarted        = "Started"
	EventKilling        = "Killing"
	EventImageNotMapped = "ImageNotMapped"
	EventConfigError    = "CreateContainerConfigError"
	EventBackOff        = "BackOff"
)

// restartDelay is how long the runner waits before restarting a handler
// that exited while its pod is Running (restartPolicy Always).
const restartDelay = 5 * time.Second

// PodRunner plays the kubelet's part for handler pods: for each Running
// pod whose image the ImageMap maps to a local command, whoever created it
// (an EventConsumer's Deployment, or a user's own workload scaled through
// spec.scaleTargetRef), it runs that command as a local process with the
// pod's environment; when the pod is deleted it sends SIGTERM, waits up to
// the pod's grace period, sends SIGKILL and then removes the pod, as a
// kubelet does.
type PodRunner struct {
	cs     kubernetes.Interface
	images ImageMap
	layout layout
	pids   *pidFile
	log    logr.Logger

	lister corelisters.PodLister
	ctx    context.Context

	mu       sync.Mutex
	procs    map[types.UID]*podProc
	failed   map[types.UID]string // pods whose start failed, by reason, reported once
	stopping bool
}

type podProc struct {
	namespace, name string
	uid             types.UID
	cmd             *exec.Cmd
	grace           time.Duration
	terminating     bool
	done            chan struct{}
}

func (p *podProc) pid() int { return p.cmd.Process.Pid }

// NewPodRunner returns a runner for the cluster cfg points at.
func NewPodRunner(cfg *rest.Config, images ImageMap, l layout, pids *pidFile, log logr.Logger) *PodRunner {
	return &PodRunner{
		cs:     kubernetes.NewForConfigOrDie(cfg),
		images: images,
		layout: l,
		pids:   pids,
		log:    log,
		procs:  map[types.UID]*podProc{},
		failed: map[types.UID]string{},
	}
}

// Start watches every pod until ctx ends. It does not select lagscale's
// label: a workload a user deploys and an EventConsumer scales through
// spec.scaleTargetRef carries the user's labels, not lagscale's, and its
// pods must run as a cluster's kubelets would run them.
func (r *PodRunner) Start(ctx context.Context) error {
	r.ctx = ctx
	f := informers.NewSharedInformerFactory(r.cs, 0)
	inf := f.Core().V1().Pods()
	r.lister = inf.Lister()
	if _, err := inf.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(o any) { r.sync(o.(*corev1.Pod)) },
		UpdateFunc: func(_, o any) { r.sync(o.(*corev1.Pod)) },
		DeleteFunc: func(o any) {
			if t, ok := o.(cache.DeletedFinalStateUnknown); ok {
				o = t.Obj
			}
			if p, ok := o.(*corev1.Pod); ok {
				r.deleted(p)
			}
		},
	}); err != nil {
		return err
	}
	f.Start(ctx.Done())
	for t, ok := range f.WaitForCacheSync(ctx.Done()) {
		if !ok {
			return fmt.Errorf("pod runner: cache for %v did not sync", t)
		}
	}
	return nil
}

// Running returns the PID of each pod's handler process, by namespace/name.
func (r *PodRunner) Running() map[string]int {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := map[string]int{}
	for _, p := range r.procs {
		out[p.namespace+"/"+p.name] = p.pid()
	}
	return out
}

func (r *PodRunner) sync(pod *corev1.Pod) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.stopping {
		return
	}
	proc := r.procs[pod.UID]
	if pod.DeletionTimestamp != nil {
		if proc == nil {
			go r.finalize(pod.Namespace, pod.Name, pod.UID)
			return
		}
		if !proc.terminating {
			proc.terminating = true
			proc.grace = graceOf(pod)
			go r.terminate(proc, true)
		}
		return
	}
	if proc != nil || pod.Status.Phase != corev1.PodRunning {
		return
	}
	if _, ok := r.failed[pod.UID]; ok {
		return
	}
	if err := r.start(pod); err != nil {
		r.log.Error(err, "Handler not started", "pod", pod.Namespace+"/"+pod.Name)
	}
}

func (r *PodRunner) deleted(pod *corev1.Pod) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.failed, pod.UID)
	if proc := r.procs[pod.UID]; proc != nil && !proc.terminating {
		proc.terminating = true
		proc.grace = graceOf(pod)
		go r.terminate(proc, false)
	}
}

// graceOf is the grace period a kubelet would give the pod.
func graceOf(pod *corev1.Pod) time.Duration {
	if pod.DeletionGracePeriodSeconds != nil {
		return time.Duration(*pod.DeletionGracePeriodSeconds) * time.Second
	}
	if pod.Spec.TerminationGracePeriodSeconds != nil {
		return time.Duration(*pod.Spec.TerminationGracePeriodSeconds) * time.Second
	}
	return 30 * time.Second
}

// handlerContainer is the container named "handler", else the first.
func handlerContainer(pod *corev1.Pod) *corev1.Container {
	for i := range pod.Spec.Containers {
		if pod.Spec.Containers[i].Name == "handler" {
			return &pod.Spec.Containers[i]
		}
	}
	if len(pod.Spec.Containers) == 0 {
		return nil
	}
	return &pod.Spec.Containers[0]
}

// start starts the pod's handler; r.mu is held.
func (r *PodRunner) start(pod *corev1.Pod) error {
	c := handlerContainer(pod)
	if c == nil {
		return fmt.Errorf("pod has no container")
	}
	argv, ok := r.images.Lookup(c.Image)
	if !ok {
		r.fail(pod, EventImageNotMapped, fmt.Sprintf("Image %q has no local command in the sandbox: map it in a file passed with `lagscale sandbox up --images FILE` (known: %s)", c.Image, strings.Join(r.images.Images(), ", ")))
		return fmt.Errorf("image %q not mapped", c.Image)
	}
	if _, err := exec.LookPath(argv[0]); err != nil {
		msg := fmt.Sprintf("Command %q for image %q not found", argv[0], c.Image)
		if strings.HasSuffix(argv[0], "example-handler") {
			msg += ": build it with `make sandbox-tools`"
		}
		r.fail(pod, EventImageNotMapped, msg)
		return fmt.Errorf("%s", msg)
	}
	if jar := jarOf(argv); jar != "" {
		if _, err := os.Stat(jar); err != nil {
			msg := fmt.Sprintf("Jar %s for image %q not found: build it with `make %s`", jar, c.Image, filepath.Base(filepath.Dir(filepath.Dir(jar))))
			r.fail(pod, EventImageNotMapped, msg)
			return fmt.Errorf("%s", msg)
		}
	}
	env, err := ResolveEnv(r.ctx, clientGetter{r.cs}, pod, c)
	if err != nil {
		r.fail(pod, EventConfigError, "Error: "+err.Error())
		return err
	}
	base := []string{"HOSTNAME=" + pod.Name}
	for _, k := range []string{"PATH", "HOME", "TMPDIR", "LANG"} {
		if v, ok := os.LookupEnv(k); ok {
			base = append(base, k+"="+v)
		}
	}
	logPath := r.layout.PodLog(pod.Namespace, pod.Name)
	if err := os.MkdirAll(filepath.Dir(logPath), 0o755); err != nil {
		return err
	}
	f, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	// Pods share the host's network here: each handler gets its own
	// health and metrics port instead of the SDK's default :8080.
	port, err := freePort()
	if err != nil {
		f.Close()
		return err
	}
	env = append(env, fmt.Sprintf("LAGSCALE_HTTP_ADDR=127.0.0.1:%d", port))
	full := append(append([]string(nil), argv...), c.Args...)
	cmd := exec.Command(full[0], full[1:]...)
	cmd.Env = append(base, env...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.Dir = r.layout.Dir
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		f.Close()
		r.fail(pod, EventConfigError, "Error: start "+full[0]+": "+err.Error())
		return err
	}
	proc := &podProc{namespace: pod.Namespace, name: pod.Name, uid: pod.UID, cmd: cmd, grace: graceOf(pod), done: make(chan struct{})}
	r.procs[pod.UID] = proc
	_ = r.pids.add("handler:"+pod.Namespace+"/"+pod.Name, cmd.Process.Pid)
	r.event(pod, corev1.EventTypeNormal, EventStarted, fmt.Sprintf("Started handler process %d: %s", cmd.Process.Pid, strings.Join(full, " ")))
	r.log.Info("Started handler", "pod", pod.Namespace+"/"+pod.Name, "pid", cmd.Process.Pid)
	go func() {
		err := cmd.Wait()
		f.Close()
		_ = r.pids.remove(proc.pid())
		close(proc.done)
		r.mu.Lock()
		defer r.mu.Unlock()
		delete(r.procs, proc.uid)
		if proc.terminating || r.stopping {
			return
		}
		// It exited on its own while the pod runs: restart it after a
		// delay, as restartPolicy Always would.
		r.eventRef(proc.namespace, proc.name, proc.uid, corev1.EventTypeWarning, EventBackOff,
			fmt.Sprintf("Handler process %d exited (%v); restarting in %s; see `lagscale sandbox logs %s`", proc.pid(), err, restartDelay, proc.name))
		time.AfterFunc(restartDelay, func() {
			if p, err := r.lister.Pods(proc.namespace).Get(proc.name); err == nil && p.UID == proc.uid {
				r.sync(p)
			}
		})
	}()
	return nil
}

// jarOf is the jar of a `java ... -jar FILE` command, or "".
func jarOf(argv []string) string {
	for i := 1; i+1 < len(argv); i++ {
		if argv[i] == "-jar" {
			return argv[i+1]
		}
	}
	return ""
}

// fail reports a start failure on the pod once; r.mu is held.
func (r *PodRunner) fail(pod *corev1.Pod, reason, msg string) {
	if r.failed[pod.UID] == reason {
		return
	}
	r.failed[pod.UID] = reason
	r.event(pod, corev1.EventTypeWarning, reason, msg)
}

// terminate stops the process like a kubelet: SIGTERM, the grace period,
// SIGKILL; then, for a deleted pod, it removes the pod object.
func (r *PodRunner) terminate(p *podProc, finalize bool) {
	r.eventRef(p.namespace, p.name, p.uid, corev1.EventTypeNormal, EventKilling, fmt.Sprintf("Stopping handler process %d (grace period %s)", p.pid(), p.grace))
	stopProc(p)
	if finalize {
		r.finalize(p.namespace, p.name, p.uid)
	}
}

// stopProc sends SIGTERM to the process group, waits up to the grace
// period, then sends SIGKILL. It reports whether SIGKILL was needed.
func stopProc(p *podProc) bool {
	_ = syscall.Kill(-p.pid(), syscall.SIGTERM)
	select {
	case <-p.done:
		return false
	case <-time.After(p.grace):
	}
	_ = syscall.Kill(-p.pid(), syscall.SIGKILL)
	<-p.done
	return true
}

// finalize removes a terminated pod object (grace period 0), as the
// kubelet does once the containers have stopped.
func (r *PodRunner) finalize(namespace, name string, uid types.UID) {
	zero := int64(0)
	err := r.cs.CoreV1().Pods(namespace).Delete(context.Background(), name, metav1.DeleteOptions{
		GracePeriodSeconds: &zero,
		Preconditions:      &metav1.Preconditions{UID: &uid},
	})
	if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
		r.log.Error(err, "Remove terminated pod", "pod", namespace+"/"+name)
	}
}

// StopAll stops every handler process (SIGTERM, grace period capped at 30
// s, SIGKILL) without touching the pods: on the next `up` they run again.
func (r *PodRunner) StopAll() []string {
	r.mu.Lock()
	r.stopping = true
	procs := make([]*podProc, 0, len(r.procs))
	for _, p := range r.procs {
		procs = append(procs, p)
	}
	r.mu.Unlock()
	var mu sync.Mutex
	var out []string
	var wg sync.WaitGroup
	for _, p := range procs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if p.grace > 30*time.Second {
				p.grace = 30 * time.Second
			}
			how := "SIGTERM"
			if stopProc(p) {
				how = "SIGKILL"
			}
			mu.Lock()
			out = append(out, fmt.Sprintf("handler of pod %s/%s (pid %d, %s)", p.namespace, p.name, p.pid(), how))
			mu.Unlock()
		}()
	}
	wg.Wait()
	sort.Strings(out)
	return out
}

func (r *PodRunner) event(pod *corev1.Pod, typ, reason, msg string) {
	r.eventRef(pod.Namespace, pod.Name, pod.UID, typ, reason, msg)
}

// eventRef records an Event on the pod, as the kubelet's "kubelet" source.
func (r *PodRunner) eventRef(namespace, name string, uid types.UID, typ, reason, msg string) {
	now := metav1.Now()
	ev := &corev1.Event{
		ObjectMeta: metav1.ObjectMeta{GenerateName: name + ".", Namespace: namespace},
		InvolvedObject: corev1.ObjectReference{
			Kind: "Pod", APIVersion: "v1", Namespace: namespace, Name: name, UID: uid,
			FieldPath: "spec.containers{handler}",
		},
		Reason:              reason,
		Message:             msg,
		Type:                typ,
		Source:              corev1.EventSource{Component: "lagscale-sandbox-kubelet"},
		FirstTimestamp:      now,
		LastTimestamp:       now,
		Count:               1,
		ReportingController: "lagscale.dev/sandbox",
		ReportingInstance:   "sandbox",
	}
	go func() {
		if _, err := r.cs.CoreV1().Events(namespace).Create(context.Background(), ev, metav1.CreateOptions{}); err != nil {
			r.log.Error(err, "Record event", "pod", namespace+"/"+name, "reason", reason)
		}
	}()
}

// clientGetter reads Secrets and ConfigMaps through the API.
type clientGetter struct{ cs kubernetes.Interface }

func (g clientGetter) Secret(ctx context.Context, ns, name string) (*corev1.Secret, error) {
	return g.cs.CoreV1().Secrets(ns).Get(ctx, name, metav1.GetOptions{})
}

func (g clientGetter) ConfigMap(ctx context.Context, ns, name string) (*corev1.ConfigMap, error) {
	return g.cs.CoreV1().ConfigMaps(ns).Get(ctx, name, metav1.GetOptions{})
}

// PodLogs returns the log file of the pod called name ("pod" or
// "namespace/pod") in the sandbox in dir.
func PodLogs(dir, name string) (string, error) {
	if dir == "" {
		dir = DefaultDir()
	}
	l := layout{Dir: dir}
	if ns, pod, ok := strings.Cut(name, "/"); ok {
		p := l.PodLog(ns, pod)
		if _, err := os.Stat(p); err != nil {
			return "", fmt.Errorf("no log for pod %s in %s: the sandbox has not run a handler for it", name, l.Pods())
		}
		return p, nil
	}
	matches, _ := filepath.Glob(filepath.Join(l.Pods(), "*", name+".log"))
	switch len(matches) {
	case 0:
		return "", fmt.Errorf("no log for pod %q in %s: list the pods with `kubectl get pods -A`", name, l.Pods())
	case 1:
		return matches[0], nil
	}
	return "", fmt.Errorf("pod %q exists in several namespaces: give it as NAMESPACE/%s", name, name)
}
