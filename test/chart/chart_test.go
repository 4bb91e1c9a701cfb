// Package chart tests the Helm chart: lint, render, schema, and the RBAC it
// grants, proven by running the operator under it against a real API server.
package chart

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	appsv1 "k8s.io/api/apps/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	"sigs.k8s.io/yaml"

	"github.com/lagscale/lagscale/api/v1alpha1"
	"github.com/lagscale/lagscale/internal/operator"
	"github.com/lagscale/lagscale/internal/shard"
	"github.com/lagscale/lagscale/internal/testenv"
	"github.com/lagscale/lagscale/internal/testkit"
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

// Names of the ClusterRoles the chart renders for release "ops".
const (
	managerRole       = "ops-lagscale"
	metricsAuthRole   = "ops-lagscale-metrics-auth"
	metricsReaderRole = "ops-lagscale-metrics-reader"
)

// named returns the object of kind named name, failing the test without it.
func named(t *testing.T, objs []*unstructured.Unstructured, kind, name string) *unstructured.Unstructured {
	t.Helper()
	for _, o := range find(objs, kind) {
		if o.GetName() == name {
			return o
		}
	}
	t.Fatalf("no %s %s rendered", kind, name)
	return nil
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
	// ClusterRoles: the manager's, the metrics endpoint's TokenReview and
	// SubjectAccessReview, and metrics-reader for scrapers.
	want := map[string]int{"ServiceAccount": 1, "CustomResourceDefinition": 2, "ClusterRole": 3, "ClusterRoleBinding": 2, "Role": 1, "RoleBinding": 1, "Service": 1, "Deployment": 1}
	for kind, n := range want {
		if got := len(find(objs, kind)); got != n {
			t.Errorf("%d %s, want %d", got, kind, n)
		}
	}
	for _, kind := range []string{"ServiceMonitor", "PodDisruptionBudget", "ConfigMap"} {
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
	if !contains(c.Args, "--leader-elect=true") {
		t.Errorf("one replica elects a leader too, since a rolling update runs two: %v", c.Args)
	}
	// The Lease is granted in the release namespace only.
	if r := find(objs, "Role"); len(r) == 1 && r[0].GetNamespace() != releaseNS {
		t.Errorf("the leader election Role is in %q, want %q", r[0].GetNamespace(), releaseNS)
	}
	cr := &rbacv1.ClusterRole{}
	typed(t, named(t, objs, "ClusterRole", managerRole), cr)
	for _, r := range cr.Rules {
		if contains(r.APIGroups, "coordination.k8s.io") {
			t.Errorf("the ClusterRole grants Leases cluster-wide: %+v", r)
		}
	}
	// Metrics are served securely by default, with a role to read them.
	if !contains(c.Args, "--metrics-secure=true") {
		t.Errorf("metrics must be secure by default: %v", c.Args)
	}
	auth, reader := &rbacv1.ClusterRole{}, &rbacv1.ClusterRole{}
	typed(t, named(t, objs, "ClusterRole", metricsAuthRole), auth)
	typed(t, named(t, objs, "ClusterRole", metricsReaderRole), reader)
	var reviews []string
	for _, r := range auth.Rules {
		reviews = append(reviews, strings.Join(r.Resources, ",")+":"+strings.Join(r.Verbs, ","))
	}
	if !reflect.DeepEqual(reviews, []string{"tokenreviews:create", "subjectaccessreviews:create"}) {
		t.Errorf("metrics-auth ClusterRole grants %v, want create on tokenreviews and subjectaccessreviews only", reviews)
	}
	if !reflect.DeepEqual(reader.Rules, testenv.MetricsReaderRules) {
		t.Errorf("metrics-reader ClusterRole %+v, want get on /metrics only", reader.Rules)
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
	typed(t, named(t, objs, "ClusterRole", managerRole), role)
	for _, r := range append(role.Rules, auth.Rules...) {
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
	if !contains(c.Args, "--leader-elect=true") || !contains(c.Args, "--log-level=debug") || !contains(c.Args, "--status-writes-per-second=50") {
		t.Errorf("two replicas must elect a leader; extraArgs appended: %v", c.Args)
	}
	if !strings.HasSuffix(c.Image, "@sha256:"+strings.Repeat("a", 64)) || dep.Spec.Template.Spec.PriorityClassName != "system-cluster-critical" {
		t.Errorf("image %s priorityClass %s", c.Image, dep.Spec.Template.Spec.PriorityClassName)
	}
	// The ServiceMonitor scrapes the secure endpoint with Prometheus's
	// token.
	sm := find(objs, "ServiceMonitor")[0]
	ep, _, _ := unstructured.NestedSlice(sm.Object, "spec", "endpoints")
	if len(ep) != 1 {
		t.Fatalf("ServiceMonitor endpoints %v", ep)
	}
	e := ep[0].(map[string]any)
	skip, _, _ := unstructured.NestedBool(e, "tlsConfig", "insecureSkipVerify")
	if e["scheme"] != "https" || e["bearerTokenFile"] != "/var/run/secrets/kubernetes.io/serviceaccount/token" || !skip {
		t.Errorf("ServiceMonitor endpoint %v: want https, the ServiceAccount token and the default tlsConfig", e)
	}
	if plain := find(render(t, "--set", "metrics.serviceMonitor.enabled=true", "--set", "metrics.secure=false"), "ServiceMonitor")[0]; plain != nil {
		ep, _, _ := unstructured.NestedSlice(plain.Object, "spec", "endpoints")
		if _, ok := ep[0].(map[string]any)["scheme"]; ok {
			t.Errorf("metrics.secure=false still scrapes over https: %v", ep[0])
		}
	}

	cm := &corev1.ConfigMap{}
	typed(t, find(objs, "ConfigMap")[0], cm)
	dash := cm.Data["lagscale.json"]
	for _, metric := range []string{"lagscale_consumer_lag_records", "lagscale_consumer_lag_seconds", "lagscale_consumer_inflow_records_per_second", "lagscale_consumer_replicas", "lagscale_scale_events_total", "lagscale_decision_latency_seconds"} {
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
		{"scaleTargets by wildcard", "scaleTargets[0].group=*,scaleTargets[0].resource=rollouts", "/scaleTargets/0/group"},
		{"scaleTargets without a resource", "scaleTargets[0].group=argoproj.io", "missing property 'resource'"},
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

// TestScaleTargetsValue: each scaleTargets entry grants get and update on
// its scale subresource and list and watch on the kind, by name, in the
// ClusterRole or in each watched namespace's Role.
func TestScaleTargetsValue(t *testing.T) {
	set := []string{"--set", "scaleTargets[0].group=argoproj.io", "--set", "scaleTargets[0].resource=rollouts"}
	want := map[string]bool{"argoproj.io/rollouts/scale:get": true, "argoproj.io/rollouts/scale:update": true,
		"argoproj.io/rollouts:list": true, "argoproj.io/rollouts:watch": true}
	for name, tc := range map[string]struct {
		args []string
		kind string
	}{
		"cluster-wide":    {set, "ClusterRole"},
		"watchNamespaces": {append([]string{"--set", "watchNamespaces={team-a}"}, set...), "Role"},
	} {
		t.Run(name, func(t *testing.T) {
			got := map[string]bool{}
			for _, o := range find(render(t, tc.args...), tc.kind) {
				if strings.HasSuffix(o.GetName(), "-leader-election") {
					continue
				}
				var role struct {
					Rules []rbacv1.PolicyRule `json:"rules"`
				}
				typed(t, o, &role)
				for _, g := range grantsOf(tc.kind, role.Rules) {
					if g.group == "argoproj.io" {
						got[g.group+"/"+g.resource+":"+g.verb] = true
					}
				}
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("%s grants %v for the Rollout entry, want %v", tc.kind, got, want)
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

// startRBACEnv starts a control plane with the release and team namespaces.
func startRBACEnv(t *testing.T) *testenv.Env {
	t.Helper()
	env, err := testenv.Start()
	if err != nil {
		t.Fatalf("start control plane: %v", err)
	}
	t.Cleanup(func() { _ = env.Stop() })
	for _, ns := range []string{releaseNS, "team-a", "team-b"} {
		err := env.Client.Create(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}})
		if err != nil && !apierrors.IsAlreadyExists(err) {
			t.Fatal(err)
		}
	}
	return env
}

func runUnderChartRBAC(t *testing.T, args []string, watch []string) {
	env := startRBACEnv(t)
	ctx := context.Background()
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
	ns := "team-a"
	if missing := rbacScenario(t, env, user.Config(), watch, ns, "lagscale-test", false, 60*time.Second, false); len(missing) > 0 {
		t.Fatalf("the operator could not do its work under the chart's RBAC: missing %v", missing)
	}

	sc, err := client.New(user.Config(), client.Options{Scheme: testenv.Scheme()})
	if err != nil {
		t.Fatal(err)
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
	err = sc.Create(ctx, &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "not-here"}})
	if !apierrors.IsForbidden(err) {
		t.Errorf("creating a Lease outside the release namespace: %v, want Forbidden", err)
	}
	if len(watch) > 0 {
		err = sc.List(ctx, &corev1.SecretList{}, client.InNamespace("team-b"))
		if !apierrors.IsForbidden(err) {
			t.Errorf("reading Secrets outside watchNamespaces: %v, want Forbidden", err)
		}
	}
}

// What the RBAC scenario checks; each granted verb is needed by one of them.
const (
	checkWaitingEvent = "a Waiting event (events.k8s.io) while the Secret is missing"
	checkDeployment   = "the Deployment"
	checkStatus       = "EventConsumer status (observedGeneration)"
	checkClusterStat  = "KafkaCluster status (consumers)"
	checkLeaseRenewed = "a renewed Lease"
	checkLeaderEvent  = "the leader election Event (core) on the Lease"
	checkEventSeries  = "the repeated Waiting event counted as a series (patched)"
	checkScaledDeploy = "a user's Deployment scaled through spec.scaleTargetRef (deployments/scale)"
	checkScaledSts    = "a user's StatefulSet scaled through spec.scaleTargetRef (statefulsets/scale)"
	checkMetrics      = "the secure metrics served to a token bound to metrics-reader"
	checkGoneLease    = "a gone replica's membership Lease deleted (sharded)"
)

// scaleTargetsOf creates, as a user would, a Deployment and a StatefulSet
// of one replica, and EventConsumers that scale them through
// spec.scaleTargetRef on a kfake broker where 80 records of lag ask for 4
// replicas. It returns the checks that they were scaled.
func scaleTargetsOf(t *testing.T, c client.Client, ns string) map[string]func() bool {
	t.Helper()
	ctx := context.Background()
	kafka, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(4, "scaled-deploy", "scaled-sts"))
	if err != nil {
		t.Fatalf("start kfake: %v", err)
	}
	t.Cleanup(kafka.Close)
	prod, err := kgo.NewClient(kgo.SeedBrokers(kafka.ListenAddrs()...), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	defer prod.Close()
	for _, topic := range []string{"scaled-deploy", "scaled-sts"} {
		for p := int32(0); p < 4; p++ {
			for i := 0; i < 20; i++ {
				if err := prod.ProduceSync(ctx, &kgo.Record{Topic: topic, Partition: p, Value: []byte("x")}).FirstErr(); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	one := int32(1)
	labels := map[string]string{"app": "scaled"}
	tmpl := corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels}, Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "c:1"}}}}
	dep := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "scaled-deploy"}, Spec: appsv1.DeploymentSpec{
		Replicas: &one, Selector: &metav1.LabelSelector{MatchLabels: labels}, Template: tmpl}}
	sts := &appsv1.StatefulSet{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "scaled-sts"}, Spec: appsv1.StatefulSetSpec{
		Replicas: &one, Selector: &metav1.LabelSelector{MatchLabels: labels}, Template: tmpl}}
	objs := []client.Object{dep, sts}
	for _, w := range []struct{ kind, name string }{{"Deployment", dep.Name}, {"StatefulSet", sts.Name}} {
		objs = append(objs, &v1alpha1.EventConsumer{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: w.name}, Spec: v1alpha1.EventConsumerSpec{
			Topics: []string{w.name}, ConsumerGroup: w.name,
			Kafka:          v1alpha1.KafkaConnection{BootstrapServers: kafka.ListenAddrs()},
			ScaleTargetRef: &v1alpha1.ScaleTargetRef{APIVersion: "apps/v1", Kind: w.kind, Name: w.name},
			Scaling: v1alpha1.ScalingSpec{Policy: v1alpha1.PolicyLagThreshold, LagThreshold: ptrTo[int64](25), PollIntervalSeconds: ptrTo[int32](1),
				OffsetResetPolicy: v1alpha1.OffsetResetEarliest},
		}})
	}
	for _, o := range objs {
		if err := c.Create(ctx, o); err != nil {
			t.Fatal(err)
		}
	}
	scaled := func(o client.Object) func() bool {
		return func() bool {
			cur := o.DeepCopyObject().(client.Object)
			if c.Get(ctx, client.ObjectKeyFromObject(o), cur) != nil {
				return false
			}
			switch w := cur.(type) {
			case *appsv1.Deployment:
				return *w.Spec.Replicas == 4
			case *appsv1.StatefulSet:
				return *w.Spec.Replicas == 4
			}
			return false
		}
	}
	return map[string]func() bool{checkScaledDeploy: scaled(dep), checkScaledSts: scaled(sts)}
}

func ptrTo[T any](v T) *T { return &v }

// rbacScenario runs the operator with cfg and walks one EventConsumer
// through everything it does with the API server: it waits for a missing
// Secret (an event), creates the Deployment once the Secret exists, writes
// both status subresources, takes and renews the Lease, and records the
// repeated event when the Secret goes again. It returns what did not happen
// within wait (one deadline for the whole walk).
// leaderEventRecorded reports whether a LeaderElection event of the Lease
// leaseID was recorded in the release namespace.
func leaderEventRecorded(ctx context.Context, c client.Client, leaseID string) bool {
	list := &corev1.EventList{}
	if c.List(ctx, list, client.InNamespace(releaseNS)) != nil {
		return false
	}
	for _, e := range list.Items {
		if e.InvolvedObject.Kind == "Lease" && e.InvolvedObject.Name == leaseID && e.Reason == "LeaderElection" {
			return true
		}
	}
	return false
}

// rbacScenario runs the operator with cfg's permissions through a
// scenario that needs every permission the generated RBAC grants, and
// returns the checks that did not pass within wait: a consumer waits for
// a Secret (a Waiting event), runs once it appears (Deployment, status,
// KafkaCluster status, scale targets, Lease, leader event, metrics), and
// waits again when it goes (an event series).
func rbacScenario(t *testing.T, env *testenv.Env, cfg *rest.Config, watch []string, ns, leaseID string, sharded bool, wait time.Duration, expectFailure bool) []string {
	t.Helper()
	ctx := context.Background()
	c := env.Client
	kc, ec := createScenarioConsumer(ctx, t, c, ns)
	targets := scaleTargetsOf(t, c, ns)
	token := scenarioScraperToken(ctx, t, env, ns)
	metricsAddr := testkit.FreeAddr(t)
	stop := startScenarioOperator(ctx, t, cfg, operator.Options{
		MetricsAddr: metricsAddr, MetricsSecure: true, ProbeAddr: "0",
		LeaderElect: true, LeaderElectionID: leaseID, LeaderElectionNamespace: releaseNS,
		WatchNamespaces: watch, MaxConcurrentReconciles: 2, DefaultPollInterval: time.Second,
		Registry: prometheus.NewRegistry(), SkipNameValidation: true,
		Sharding: sharded, ShardIdentity: leaseID,
	}, expectFailure)
	defer stop()

	checks := scenarioChecks(ctx, c, kc, ec, leaseID, metricsAddr, token)
	for k, f := range targets {
		checks[k] = f
	}
	p := &scenarioPhases{checks: checks, deadline: time.Now().Add(wait)}
	if sharded {
		checks[checkGoneLease] = goneLeaseDeleted(ctx, t, c, leaseID)
		p.wait(checkGoneLease)
	}
	p.wait(checkWaitingEvent)
	secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "creds"}, StringData: map[string]string{"username": "u", "password": "p"}}
	if err := c.Create(ctx, secret); err != nil {
		t.Fatal(err)
	}
	p.wait(checkDeployment, checkStatus, checkClusterStat, checkLeaseRenewed, checkLeaderEvent, checkScaledDeploy, checkScaledSts, checkMetrics)
	if err := c.Delete(ctx, secret); err != nil {
		t.Fatal(err)
	}
	p.wait(checkEventSeries)
	if len(p.missing) > 0 && !expectFailure {
		list := &eventsv1.EventList{}
		_ = c.List(ctx, list, client.InNamespace(ns))
		for _, e := range list.Items {
			t.Logf("event %s %s %q series=%+v", e.Name, e.Reason, e.Note, e.Series)
		}
	}
	return p.missing
}

// goneLeaseDeleted creates the released membership Lease of a replica of
// group that has gone, and returns the check that the sharder deleted it.
func goneLeaseDeleted(ctx context.Context, t *testing.T, c client.Client, group string) func() bool {
	t.Helper()
	l := &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Namespace: releaseNS, Name: "lagscale-shard-" + group + "-gone",
		Labels: map[string]string{shard.LabelMember: group}}}
	if err := c.Create(ctx, l); err != nil {
		t.Fatal(err)
	}
	return func() bool {
		return apierrors.IsNotFound(c.Get(ctx, client.ObjectKeyFromObject(l), &coordinationv1.Lease{}))
	}
}

// createScenarioConsumer creates a KafkaCluster whose SASL Secret does not
// exist yet and an EventConsumer that references it.
func createScenarioConsumer(ctx context.Context, t *testing.T, c client.Client, ns string) (*v1alpha1.KafkaCluster, *v1alpha1.EventConsumer) {
	t.Helper()
	kc := &v1alpha1.KafkaCluster{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "main"}, Spec: v1alpha1.KafkaClusterSpec{
		BootstrapServers: []string{"127.0.0.1:1"},
		SASL:             &v1alpha1.SASLConfig{Mechanism: v1alpha1.SASLPlain, SecretRef: v1alpha1.LocalObjectRef{Name: "creds"}},
	}}
	ec := &v1alpha1.EventConsumer{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "orders"}, Spec: v1alpha1.EventConsumerSpec{
		Topics: []string{"orders"}, ConsumerGroup: "g",
		Kafka:   v1alpha1.KafkaConnection{ClusterRef: &v1alpha1.LocalObjectRef{Name: "main"}},
		Handler: &v1alpha1.HandlerSpec{Image: "handler:1"},
	}}
	for _, o := range []client.Object{kc, ec} {
		if err := c.Create(ctx, o); err != nil {
			t.Fatal(err)
		}
	}
	return kc, ec
}

// scenarioScraperToken is a scraper's token, bound to a role like the
// chart's metrics-reader: the operator checks it with its own TokenReview
// and SubjectAccessReview grants.
func scenarioScraperToken(ctx context.Context, t *testing.T, env *testenv.Env, ns string) string {
	t.Helper()
	if err := env.EnsureClusterRole(ctx, "scenario-metrics-reader", testenv.MetricsReaderRules); err != nil {
		t.Fatal(err)
	}
	token, err := env.ServiceAccountToken(ctx, ns, "scraper", "scenario-metrics-reader")
	if err != nil {
		t.Fatal(err)
	}
	return token
}

// startScenarioOperator runs the operator with cfg until the returned
// function stops it. Without a permission the manager may fail on its own
// (a cache that cannot sync); that is the expected outcome when
// expectFailure.
func startScenarioOperator(ctx context.Context, t *testing.T, cfg *rest.Config, o operator.Options, expectFailure bool) (stop func()) {
	t.Helper()
	opctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- operator.Run(opctx, cfg, o) }()
	return func() {
		cancel()
		select {
		case err := <-done:
			if err != nil && !expectFailure {
				t.Errorf("operator: %v", err)
			}
		case <-time.After(30 * time.Second):
			// A manager whose caches can never sync may not return
			// promptly; only a failing-RBAC case may leave it behind.
			if !expectFailure {
				t.Errorf("operator did not stop within 30s")
			}
		}
	}
}

// scenarioChecks are the scenario's checks by name, each true once what
// it needs has happened.
func scenarioChecks(ctx context.Context, c client.Client, kc *v1alpha1.KafkaCluster, ec *v1alpha1.EventConsumer, leaseID, metricsAddr, token string) map[string]func() bool {
	ns := ec.Namespace
	// waitingEvents are the Waiting events of the consumer: a repeat is
	// patched into a series, or created anew when it races the first.
	waitingEvents := func() []eventsv1.Event {
		list := &eventsv1.EventList{}
		if err := c.List(ctx, list, client.InNamespace(ns)); err != nil {
			return nil
		}
		var out []eventsv1.Event
		for _, e := range list.Items {
			if e.Reason == v1alpha1.EventWaiting && e.Regarding.Name == "orders" {
				out = append(out, e)
			}
		}
		return out
	}
	return map[string]func() bool{
		checkWaitingEvent: func() bool { return len(waitingEvents()) > 0 },
		checkEventSeries: func() bool {
			for _, e := range waitingEvents() {
				if e.Series != nil && e.Series.Count >= 2 {
					return true
				}
			}
			return false
		},
		checkDeployment: func() bool {
			return c.Get(ctx, client.ObjectKey{Namespace: ns, Name: "orders"}, &appsv1.Deployment{}) == nil
		},
		checkStatus: func() bool {
			got := &v1alpha1.EventConsumer{}
			return c.Get(ctx, client.ObjectKeyFromObject(ec), got) == nil && got.Status.ObservedGeneration == got.Generation
		},
		checkClusterStat: func() bool {
			got := &v1alpha1.KafkaCluster{}
			return c.Get(ctx, client.ObjectKeyFromObject(kc), got) == nil && got.Status.Consumers == 1
		},
		checkLeaseRenewed: func() bool {
			l := &coordinationv1.Lease{}
			if c.Get(ctx, client.ObjectKey{Namespace: releaseNS, Name: leaseID}, l) != nil || l.Spec.RenewTime == nil || l.Spec.AcquireTime == nil {
				return false
			}
			return l.Spec.RenewTime.After(l.Spec.AcquireTime.Time)
		},
		checkMetrics: func() bool {
			code, body, err := testenv.ScrapeMetrics(metricsAddr, token)
			return err == nil && code == http.StatusOK && strings.Contains(body, "workqueue_")
		},
		checkLeaderEvent: func() bool { return leaderEventRecorded(ctx, c, leaseID) },
	}
}

// scenarioPhases waits for named checks until one deadline shared by all
// phases, and collects those that never passed.
type scenarioPhases struct {
	checks   map[string]func() bool
	deadline time.Time
	missing  []string
}

// wait polls the named checks until all pass or the deadline passes.
func (p *scenarioPhases) wait(names ...string) {
	for {
		var left []string
		for _, n := range names {
			if !p.checks[n]() {
				left = append(left, n)
			}
		}
		if len(left) == 0 || time.Now().After(p.deadline) {
			p.missing = append(p.missing, left...)
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// neededBy names, for each verb the generated RBAC grants, the scenario
// check that fails without it. A verb granted without an entry here fails
// TestChartRBACIsMinimal: drop its marker or add the test that needs it.
//
// list and watch of one resource are taken away together: client-go falls
// back from each to the other (a streamed WatchList needs no list; a
// forbidden watch relists with backoff), so either alone leaves a polling,
// late cache that a bounded test cannot tell from a working one.
var neededBy = map[string]string{
	"ClusterRole /secrets:get":                             checkDeployment,
	"ClusterRole /secrets:list+watch":                      checkDeployment,
	"ClusterRole apps/deployments:get":                     checkDeployment,
	"ClusterRole apps/deployments:list+watch":              checkDeployment,
	"ClusterRole apps/deployments:create":                  checkDeployment,
	"ClusterRole apps/deployments:patch":                   checkDeployment,
	"ClusterRole events.k8s.io/events:create":              checkWaitingEvent,
	"ClusterRole events.k8s.io/events:patch":               checkEventSeries,
	"ClusterRole lagscale.dev/eventconsumers:list+watch":   checkStatus,
	"ClusterRole lagscale.dev/eventconsumers:patch":        checkDeployment,
	"ClusterRole lagscale.dev/kafkaclusters:list+watch":    checkClusterStat,
	"ClusterRole lagscale.dev/eventconsumers/status:patch": checkStatus,
	"ClusterRole lagscale.dev/kafkaclusters/status:patch":  checkClusterStat,
	"Role coordination.k8s.io/leases:get":                  checkDeployment,
	"Role coordination.k8s.io/leases:create":               checkDeployment,
	"Role coordination.k8s.io/leases:update":               checkLeaseRenewed,
	"Role coordination.k8s.io/leases:list+watch":           checkDeployment,
	"Role coordination.k8s.io/leases:delete":               checkGoneLease,
	// The bucket table of a sharded operator: without it no bucket has
	// an owner, and no replica writes any consumer.
	"Role /configmaps:list+watch": checkDeployment,
	"Role /configmaps:create":     checkDeployment,
	"Role /configmaps:update":     checkDeployment,
	"Role /events:create":         checkLeaderEvent,
	// spec.scaleTargetRef: replicas through the scale subresource, the
	// StatefulSets watched in the target cache (a cache that cannot sync
	// stops the controller), HPAs listed before every write.
	"ClusterRole apps/deployments/scale:get":                      checkScaledDeploy,
	"ClusterRole apps/deployments/scale:update":                   checkScaledDeploy,
	"ClusterRole apps/statefulsets/scale:get":                     checkScaledSts,
	"ClusterRole apps/statefulsets/scale:update":                  checkScaledSts,
	"ClusterRole apps/statefulsets:list+watch":                    checkScaledSts,
	"ClusterRole autoscaling/horizontalpodautoscalers:list+watch": checkScaledDeploy,
	// The secure metrics endpoint's reviews, in their own ClusterRole.
	"ClusterRole authentication.k8s.io/tokenreviews:create":        checkMetrics,
	"ClusterRole authorization.k8s.io/subjectaccessreviews:create": checkMetrics,
}

// grant is one verb on one resource in the chart's ClusterRole or Role.
type grant struct{ kind, group, resource, verb string }

func grantsOf(kind string, rules []rbacv1.PolicyRule) []grant {
	var out []grant
	for _, r := range rules {
		for _, grp := range r.APIGroups {
			for _, res := range r.Resources {
				for _, v := range r.Verbs {
					out = append(out, grant{kind, grp, res, v})
				}
			}
		}
	}
	return out
}

// unit is what one case takes away: one verb, or list and watch together.
type unit []grant

func (u unit) String() string {
	var verbs []string
	for _, g := range u {
		verbs = append(verbs, g.verb)
	}
	return u[0].kind + " " + u[0].group + "/" + u[0].resource + ":" + strings.Join(verbs, "+")
}

// unitsOf groups grants into units, list and watch of a resource as one.
func unitsOf(all []grant) []unit {
	var out []unit
	for _, g := range all {
		if g.verb == "watch" {
			continue
		}
		if g.verb == "list" {
			w := g
			w.verb = "watch"
			if slicesContains(all, w) {
				out = append(out, unit{g, w})
				continue
			}
		}
		out = append(out, unit{g})
	}
	for _, g := range all {
		l := g
		l.verb = "list"
		if g.verb == "watch" && !slicesContains(all, l) {
			out = append(out, unit{g})
		}
	}
	return out
}

func slicesContains(all []grant, g grant) bool {
	for _, x := range all {
		if x == g {
			return true
		}
	}
	return false
}

// rulesWithout returns the grants of kind, except those of skip, one rule
// each.
func rulesWithout(all []grant, kind string, skip unit) []rbacv1.PolicyRule {
	var out []rbacv1.PolicyRule
	for _, g := range all {
		if g.kind == kind && !slicesContains(skip, g) {
			out = append(out, rbacv1.PolicyRule{APIGroups: []string{g.group}, Resources: []string{g.resource}, Verbs: []string{g.verb}})
		}
	}
	return out
}

// TestChartRBACIsMinimal takes the chart's ClusterRole and Role apart verb
// by verb. With everything granted the scenario succeeds; with any one verb
// taken away, the check neededBy names for it fails. So every verb lagscale
// asks for is shown to be needed, against the real API server. The operator
// runs sharded (--sharding), whose grants are those of the default
// leader-election mode plus the sharder's: patch on EventConsumers (their
// bucket labels), list, watch and delete on the membership Leases, and
// list, watch, create and update on the bucket table's ConfigMap. The chart's
// RBAC test runs the default mode under the same grants.
func TestChartRBACIsMinimal(t *testing.T) {
	objs := render(t)
	var all []grant
	// The operator's grants: its ClusterRole, the metrics endpoint's
	// review ClusterRole (both cluster-wide, one kind here) and the leader
	// election Role. metrics-reader is for scrapers, not the operator.
	for _, role := range []struct{ kind, name string }{{"ClusterRole", managerRole}, {"ClusterRole", metricsAuthRole}, {"Role", ""}} {
		var found *unstructured.Unstructured
		if role.name != "" {
			found = named(t, objs, role.kind, role.name)
		} else if roles := find(objs, role.kind); len(roles) == 1 {
			found = roles[0]
		} else {
			t.Fatalf("%d %s rendered, want 1", len(roles), role.kind)
		}
		var rules struct {
			Rules []rbacv1.PolicyRule `json:"rules"`
		}
		typed(t, found, &rules)
		all = append(all, grantsOf(role.kind, rules.Rules)...)
	}
	units := unitsOf(all)
	for _, u := range units {
		if _, ok := neededBy[u.String()]; !ok {
			t.Errorf("%s is granted but no check needs it: drop its RBAC marker, or add to the scenario what needs it", u)
		}
	}
	for k := range neededBy {
		var granted bool
		for _, u := range units {
			granted = granted || u.String() == k
		}
		if !granted {
			t.Errorf("neededBy lists %s, which the chart no longer grants: remove the entry", k)
		}
	}
	if t.Failed() {
		return
	}

	env := startRBACEnv(t)
	ctx := context.Background()
	cases := append([]unit{nil}, units...)
	// At most a few operators at once, so that a slow machine does not make
	// the complete grant look insufficient; the complete grant runs in every
	// batch's company, as the control.
	sem := make(chan struct{}, 5)
	t.Run("cases", func(t *testing.T) {
		for i, skip := range cases {
			name := "all granted"
			if skip != nil {
				name = "without " + skip.String()
			}
			t.Run(name, func(t *testing.T) {
				t.Parallel()
				sem <- struct{}{}
				defer func() { <-sem }()
				user := fmt.Sprintf("rbac-case-%d", i)
				cr := &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: user}, Rules: rulesWithout(all, "ClusterRole", skip)}
				crb := &rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: user},
					RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: user},
					Subjects: []rbacv1.Subject{{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: user}}}
				role := &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Namespace: releaseNS, Name: user}, Rules: rulesWithout(all, "Role", skip)}
				rb := &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Namespace: releaseNS, Name: user},
					RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: user},
					Subjects: []rbacv1.Subject{{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: user}}}
				ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: user}}
				for _, o := range []client.Object{cr, crb, role, rb, ns} {
					if err := env.Client.Create(ctx, o); err != nil {
						t.Fatal(err)
					}
				}
				u, err := env.Env.AddUser(envtest.User{Name: user}, env.Admin)
				if err != nil {
					t.Fatal(err)
				}
				// Each operator watches its own namespace only, so that no
				// other case's operator does its work for it.
				missing := rbacScenario(t, env, u.Config(), []string{user}, user, user, true, 45*time.Second, skip != nil)
				if skip == nil {
					if len(missing) > 0 {
						t.Fatalf("with every verb granted the scenario did not finish: missing %v", missing)
					}
					return
				}
				want := neededBy[skip.String()]
				if !contains(missing, want) {
					t.Fatalf("without %s the scenario still achieved %q (missing: %v): the verb is not needed, drop it", skip, want, missing)
				}
				t.Logf("without %s: missing %v", skip, missing)
			})
		}
	})
}
