// Package chart tests the Helm chart: lint, render, schema, and the RBAC it
// grants, proven by running the operator under it against a real API server.
package chart

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	"sigs.k8s.io/yaml"

	"github.com/lagscale/lagscale/api/v1alpha1"
	"github.com/lagscale/lagscale/internal/operator"
	"github.com/lagscale/lagscale/internal/testenv"
)

const releaseNS = "lagscale-system"

func helmBin(t *testing.T) string {
	t.Helper()
	p := filepath.Join(testenv.Root(), "bin", "helm")
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("helm not found at %s: run `make helm` to build the pinned version", p)
	}
	return p
}

func chartDir() string { return filepath.Join(testenv.Root(), "charts", "lagscale") }

func helm(t *testing.T, args ...string) (string, error) {
	t.Helper()
	out, err := exec.Command(helmBin(t), args...).CombinedOutput()
	return string(out), err
}

// allFeatures turns every optional part of the chart on.
var allFeatures = []string{
	"--set", "metrics.serviceMonitor.enabled=true",
	"--set", "podDisruptionBudget.enabled=true",
	"--set", "grafana.dashboard.enabled=true",
	"--set", "replicas=2",
	"--set", "image.digest=sha256:" + strings.Repeat("a", 64),
	"--set", "priorityClassName=system-cluster-critical",
	"--set", "extraArgs={--log-level=debug}",
}

// render runs helm template and decodes every object.
func render(t *testing.T, args ...string) []*unstructured.Unstructured {
	t.Helper()
	base := []string{"template", "ops", chartDir(), "--namespace", releaseNS, "--kube-version", testenv.KubernetesVersion}
	out, err := helm(t, append(base, args...)...)
	if err != nil {
		t.Fatalf("helm template %v: %v\n%s", args, err, out)
	}
	var objs []*unstructured.Unstructured
	r := utilyaml.NewYAMLReader(bufio.NewReader(strings.NewReader(out)))
	for {
		doc, err := r.Read()
		if err == io.EOF {
			return objs
		}
		if err != nil {
			t.Fatal(err)
		}
		m := map[string]any{}
		if err := yaml.Unmarshal(doc, &m); err != nil {
			t.Fatalf("rendered YAML does not parse: %v\n%s", err, doc)
		}
		if len(m) > 0 {
			objs = append(objs, &unstructured.Unstructured{Object: m})
		}
	}
}

func find(objs []*unstructured.Unstructured, kind string) []*unstructured.Unstructured {
	var out []*unstructured.Unstructured
	for _, o := range objs {
		if o.GetKind() == kind {
			out = append(out, o)
		}
	}
	return out
}

func typed(t *testing.T, u *unstructured.Unstructured, into any) {
	t.Helper()
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, into); err != nil {
		t.Fatal(err)
	}
}

func TestHelmLint(t *testing.T) {
	for name, args := range map[string][]string{"defaults": nil, "all features": allFeatures, "namespaced": {"--set", "watchNamespaces={team-a,team-b}"}} {
		t.Run(name, func(t *testing.T) {
			out, err := helm(t, append([]string{"lint", "--strict", chartDir(), "--kube-version", testenv.KubernetesVersion}, args...)...)
			if err != nil {
				t.Fatalf("helm lint: %v\n%s", err, out)
			}
		})
	}
}

func TestRenderDefaults(t *testing.T) {
	objs := render(t)
	want := map[string]int{"ServiceAccount": 1, "CustomResourceDefinition": 2, "ClusterRole": 1, "ClusterRoleBinding": 1, "Service": 1, "Deployment": 1}
	for kind, n := range want {
		if got := len(find(objs, kind)); got != n {
			t.Errorf("%d %s, want %d", got, kind, n)
		}
	}
	for _, kind := range []string{"ServiceMonitor", "PodDisruptionBudget", "ConfigMap", "Role"} {
		if len(find(objs, kind)) != 0 {
			t.Errorf("%s rendered with default values", kind)
		}
	}

	dep := &appsv1.Deployment{}
	typed(t, find(objs, "Deployment")[0], dep)
	c := dep.Spec.Template.Spec.Containers[0]
	if c.Image != "ghcr.io/lagscale/manager:0.1.0" {
		t.Errorf("image %q: the tag must default to the chart's appVersion", c.Image)
	}
	psc, sc := dep.Spec.Template.Spec.SecurityContext, c.SecurityContext
	if !*psc.RunAsNonRoot || psc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault ||
		!*sc.ReadOnlyRootFilesystem || *sc.AllowPrivilegeEscalation || !reflect.DeepEqual(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) {
		t.Errorf("security context pod=%+v container=%+v", psc, sc)
	}
	if !contains(c.Args, "--leader-elect=false") {
		t.Errorf("one replica should not need leader election: %v", c.Args)
	}
	if c.ReadinessProbe.HTTPGet.Path != "/readyz" || c.LivenessProbe.HTTPGet.Path != "/healthz" {
		t.Error("probes must use /readyz and /healthz")
	}

	// CRDs: exactly the generated ones, kept on uninstall.
	for _, crd := range find(objs, "CustomResourceDefinition") {
		if crd.GetAnnotations()["helm.sh/resource-policy"] != "keep" {
			t.Errorf("CRD %s lacks helm.sh/resource-policy: keep", crd.GetName())
		}
		// controller-gen names the file <group>_<plural>.yaml.
		plural, group, _ := strings.Cut(crd.GetName(), ".")
		raw, err := os.ReadFile(filepath.Join(testenv.Root(), "config", "crd", "bases", group+"_"+plural+".yaml"))
		gen := map[string]any{}
		if err == nil {
			err = yaml.Unmarshal(raw, &gen)
		}
		if err != nil {
			t.Fatalf("read generated CRD for %s: %v", crd.GetName(), err)
		}
		if !reflect.DeepEqual(gen["spec"], crd.Object["spec"]) {
			t.Errorf("chart CRD %s differs from config/crd/bases: run `make chart-sync`", crd.GetName())
		}
	}

	// RBAC: the generated rules, without wildcards.
	role := &rbacv1.ClusterRole{}
	typed(t, find(objs, "ClusterRole")[0], role)
	for _, r := range role.Rules {
		for _, v := range append(append(r.Verbs, r.Resources...), r.APIGroups...) {
			if v == "*" {
				t.Errorf("wildcard in rule %+v", r)
			}
		}
	}
}

func TestRenderOptions(t *testing.T) {
	objs := render(t, allFeatures...)
	for _, kind := range []string{"ServiceMonitor", "PodDisruptionBudget", "ConfigMap"} {
		if len(find(objs, kind)) != 1 {
			t.Errorf("%s not rendered with it enabled", kind)
		}
	}
	dep := &appsv1.Deployment{}
	typed(t, find(objs, "Deployment")[0], dep)
	c := dep.Spec.Template.Spec.Containers[0]
	if !contains(c.Args, "--leader-elect=true") || !contains(c.Args, "--log-level=debug") {
		t.Errorf("two replicas must elect a leader; extraArgs appended: %v", c.Args)
	}
	if !strings.HasSuffix(c.Image, "@sha256:"+strings.Repeat("a", 64)) || dep.Spec.Template.Spec.PriorityClassName != "system-cluster-critical" {
		t.Errorf("image %s priorityClass %s", c.Image, dep.Spec.Template.Spec.PriorityClassName)
	}
	cm := &corev1.ConfigMap{}
	typed(t, find(objs, "ConfigMap")[0], cm)
	dash := cm.Data["lagscale.json"]
	for _, metric := range []string{"lagscale_consumer_lag_records", "lagscale_consumer_lag_seconds", "lagscale_consumer_inflow_records_per_second", "lagscale_consumer_replicas", "lagscale_scale_events_total"} {
		if !strings.Contains(dash, metric) {
			t.Errorf("dashboard does not show %s", metric)
		}
	}

	if n := len(find(render(t, "--set", "crds.enabled=false"), "CustomResourceDefinition")); n != 0 {
		t.Errorf("crds.enabled=false rendered %d CRDs", n)
	}
	for _, crd := range find(render(t, "--set", "crds.keep=false"), "CustomResourceDefinition") {
		if _, ok := crd.GetAnnotations()["helm.sh/resource-policy"]; ok {
			t.Errorf("crds.keep=false still keeps %s", crd.GetName())
		}
	}
}

func TestSchemaRejectsBadValues(t *testing.T) {
	tests := []struct {
		name string
		set  string
		want string
	}{
		{"replicas as a string", "replicas=two", "/replicas"},
		{"unknown top-level key", "replica=2", "additional properties 'replica' not allowed"},
		{"bad log format", "log.format=xml", "/log/format"},
		{"crds.enabled as a string", "crds.enabled=yes", "/crds/enabled"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, err := helm(t, "template", "x", chartDir(), "--kube-version", testenv.KubernetesVersion, "--set", tt.set)
			if err == nil || !strings.Contains(out, tt.want) {
				t.Fatalf("helm accepted %s or said something else: %v\n%s", tt.set, err, out)
			}
		})
	}
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// TestChartRBACIsSufficient runs the operator under exactly the chart's
// ServiceAccount RBAC, with leader election on, against the real API server:
// a missing permission would stop it from creating the Deployment, writing
// status, recording events or taking the Lease.
func TestChartRBACIsSufficient(t *testing.T) {
	for _, tc := range []struct {
		name       string
		args       []string
		namespaces []string
	}{
		{name: "cluster-wide"},
		{name: "watchNamespaces", args: []string{"--set", "watchNamespaces={team-a}"}, namespaces: []string{"team-a"}},
	} {
		t.Run(tc.name, func(t *testing.T) { runUnderChartRBAC(t, tc.args, tc.namespaces) })
	}
}

func runUnderChartRBAC(t *testing.T, args []string, watch []string) {
	env, err := testenv.Start()
	if err != nil {
		t.Fatalf("start control plane: %v", err)
	}
	t.Cleanup(func() { _ = env.Stop() })
	ctx := context.Background()
	for _, ns := range []string{releaseNS, "team-a", "team-b"} {
		if err := env.Client.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
			t.Fatal(err)
		}
	}
	// Install the chart's RBAC objects (CRDs are already installed).
	objs := render(t, args...)
	var sa string
	for _, o := range objs {
		switch o.GetKind() {
		case "ServiceAccount":
			sa = o.GetName()
			fallthrough
		case "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding":
			if err := env.Client.Create(ctx, o); err != nil {
				t.Fatalf("create %s %s: %v", o.GetKind(), o.GetName(), err)
			}
		}
	}
	user, err := env.Env.AddUser(envtest.User{Name: fmt.Sprintf("system:serviceaccount:%s:%s", releaseNS, sa), Groups: []string{"system:serviceaccounts"}}, env.Admin)
	if err != nil {
		t.Fatal(err)
	}

	opctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		done <- operator.Run(opctx, user.Config(), operator.Options{
			MetricsAddr: "0", ProbeAddr: "0",
			LeaderElect: true, LeaderElectionID: "lagscale-test", LeaderElectionNamespace: releaseNS,
			WatchNamespaces: watch, MaxConcurrentReconciles: 2, DefaultPollInterval: time.Second,
			Registry: prometheus.NewRegistry(), SkipNameValidation: true,
		})
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("operator: %v", err)
		}
	})

	ns := "team-a"
	secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "creds"}, StringData: map[string]string{"username": "u", "password": "p"}}
	kc := &v1alpha1.KafkaCluster{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "main"}, Spec: v1alpha1.KafkaClusterSpec{
		BootstrapServers: []string{"127.0.0.1:1"},
		SASL:             &v1alpha1.SASLConfig{Mechanism: v1alpha1.SASLPlain, SecretRef: v1alpha1.LocalObjectRef{Name: "creds"}},
	}}
	ec := &v1alpha1.EventConsumer{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "orders"}, Spec: v1alpha1.EventConsumerSpec{
		Topics: []string{"orders"}, ConsumerGroup: "g",
		Kafka:   v1alpha1.KafkaConnection{ClusterRef: &v1alpha1.LocalObjectRef{Name: "main"}},
		Handler: &v1alpha1.HandlerSpec{Image: "handler:1"},
	}}
	for _, o := range []client.Object{secret, kc, ec} {
		if err := env.Client.Create(ctx, o); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(60 * time.Second)
	var last string
	for time.Now().Before(deadline) {
		last = ""
		dep := &appsv1.Deployment{}
		if err := env.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: "orders"}, dep); err != nil {
			last = "no Deployment: " + err.Error()
		}
		got := &v1alpha1.EventConsumer{}
		if err := env.Client.Get(ctx, client.ObjectKeyFromObject(ec), got); err == nil && got.Status.ObservedGeneration != got.Generation {
			last += " status not written"
		}
		gotKC := &v1alpha1.KafkaCluster{}
		if err := env.Client.Get(ctx, client.ObjectKeyFromObject(kc), gotKC); err == nil && gotKC.Status.Consumers != 1 {
			last += " KafkaCluster status not written"
		}
		if last == "" {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if last != "" {
		t.Fatalf("the operator could not do its work under the chart's RBAC: %s", last)
	}

	sc, err := client.New(user.Config(), client.Options{Scheme: testenv.Scheme()})
	if err != nil {
		t.Fatal(err)
	}
	// Events: both APIs (the reconcilers use events.k8s.io, leader election
	// the core one) may be written in a watched namespace.
	for _, ev := range []*unstructured.Unstructured{
		{Object: map[string]any{"apiVersion": "events.k8s.io/v1", "kind": "Event", "metadata": map[string]any{"name": "probe-a", "namespace": ns},
			"eventTime": time.Now().UTC().Format("2006-01-02T15:04:05.000000Z"), "reportingController": "lagscale.dev/test", "reportingInstance": "t",
			"action": "Probe", "reason": "Probe", "type": "Normal", "regarding": map[string]any{"kind": "EventConsumer", "namespace": ns, "name": "orders"}}},
		{Object: map[string]any{"apiVersion": "v1", "kind": "Event", "metadata": map[string]any{"name": "probe-b", "namespace": releaseNS},
			"reason": "Probe", "type": "Normal", "involvedObject": map[string]any{"kind": "Lease", "namespace": releaseNS, "name": "lagscale-test"}}},
	} {
		if err := sc.Create(ctx, ev); err != nil {
			t.Errorf("the operator cannot record %s events: %v", ev.GetAPIVersion(), err)
		}
	}

	// Least privilege: the ServiceAccount cannot touch what lagscale does
	// not need.
	err = sc.Delete(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "creds"}})
	if !apierrors.IsForbidden(err) {
		t.Errorf("deleting a Secret: %v, want Forbidden", err)
	}
	err = sc.List(ctx, &corev1.PodList{}, client.InNamespace(ns))
	if !apierrors.IsForbidden(err) {
		t.Errorf("listing pods: %v, want Forbidden", err)
	}
	if len(watch) > 0 {
		err = sc.List(ctx, &corev1.SecretList{}, client.InNamespace("team-b"))
		if !apierrors.IsForbidden(err) {
			t.Errorf("reading Secrets outside watchNamespaces: %v, want Forbidden", err)
		}
	}
}
