package controllers

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv1 "k8s.io/api/autoscaling/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/lagscale/lagscale/api/v1alpha1"
	"github.com/lagscale/lagscale/internal/testenv"
)

// withFastEngine is withEngine with a one-second minimum between replica
// changes, so a test sees a scale-up and the scale-down after it.
func withFastEngine(t *testing.T) func(*EventConsumerReconciler) {
	return func(r *EventConsumerReconciler) {
		withEngine(t)(r)
		r.MinScaleInterval = time.Second
	}
}

// userManager is the field manager of the test's own writes, as kubectl's
// server-side apply would be for a user.
const userManager = "kubectl"

// targetConsumer is an EventConsumer that scales the named workload with
// LagThreshold 25: 80 records of lag ask for 4 replicas.
func targetConsumer(addrs []string, topic, apiVersion, kind, name string) v1alpha1.EventConsumerSpec {
	return v1alpha1.EventConsumerSpec{
		Topics: []string{topic}, ConsumerGroup: topic + "-group",
		Kafka:          v1alpha1.KafkaConnection{BootstrapServers: addrs},
		ScaleTargetRef: &v1alpha1.ScaleTargetRef{APIVersion: apiVersion, Kind: kind, Name: name},
		Scaling: v1alpha1.ScalingSpec{
			Policy:                        v1alpha1.PolicyLagThreshold,
			LagThreshold:                  ptrTo[int64](25),
			MaxReplicas:                   ptrTo[int32](5),
			PollIntervalSeconds:           ptrTo[int32](1),
			ScaleDownStabilizationSeconds: ptrTo[int32](2),
			OffsetResetPolicy:             v1alpha1.OffsetResetEarliest,
		},
	}
}

// userPodTemplate is a workload's own pod template: its own image and its
// own Kafka settings, nothing lagscale injects.
func userPodTemplate(app string) corev1.PodTemplateSpec {
	return corev1.PodTemplateSpec{
		ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": app}},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{
			Name: "consumer", Image: "team/consumer:7",
			Env: []corev1.EnvVar{{Name: "BROKERS", Value: "kafka:9092"}, {Name: "GROUP", Value: app + "-group"}},
		}}},
	}
}

// applyAsUser server-side applies obj as a user's kubectl would.
func applyAsUser(t *testing.T, obj client.Object) {
	t.Helper()
	u := &unstructured.Unstructured{}
	raw, err := runtime.DefaultUnstructuredConverter.ToUnstructured(obj)
	if err != nil {
		t.Fatal(err)
	}
	u.Object = raw
	unstructured.RemoveNestedField(u.Object, "metadata", "creationTimestamp")
	unstructured.RemoveNestedField(u.Object, "spec", "template", "metadata", "creationTimestamp")
	unstructured.RemoveNestedField(u.Object, "status")
	if err := env.Client.Apply(context.Background(), client.ApplyConfigurationFromUnstructured(u), client.FieldOwner(userManager), client.ForceOwnership); err != nil {
		t.Fatalf("apply %s %s: %v", u.GetKind(), u.GetName(), err)
	}
}

func userDeployment(ns, name string, replicas int32) *appsv1.Deployment {
	return &appsv1.Deployment{
		TypeMeta:   metav1.TypeMeta{APIVersion: "apps/v1", Kind: "Deployment"},
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Labels: map[string]string{"team": "orders"}},
		Spec: appsv1.DeploymentSpec{
			Replicas: &replicas,
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": name}},
			Template: userPodTemplate(name),
		},
	}
}

func userStatefulSet(ns, name string, replicas int32) *appsv1.StatefulSet {
	return &appsv1.StatefulSet{
		TypeMeta:   metav1.TypeMeta{APIVersion: "apps/v1", Kind: "StatefulSet"},
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Labels: map[string]string{"team": "orders"}},
		Spec: appsv1.StatefulSetSpec{
			Replicas: &replicas,
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": name}},
			Template: userPodTemplate(name),
		},
	}
}

// specReplicas reads a workload's spec.replicas from the API server.
func specReplicas(t *testing.T, obj client.Object) (int32, error) {
	t.Helper()
	cur := obj.DeepCopyObject().(client.Object)
	if err := env.Client.Get(context.Background(), client.ObjectKeyFromObject(obj), cur); err != nil {
		return 0, err
	}
	switch o := cur.(type) {
	case *appsv1.Deployment:
		return *o.Spec.Replicas, nil
	case *appsv1.StatefulSet:
		return *o.Spec.Replicas, nil
	case *unstructured.Unstructured:
		n, _, err := unstructured.NestedInt64(o.Object, "spec", "replicas")
		return int32(n), err
	}
	return 0, fmt.Errorf("unknown kind %T", cur)
}

func waitReplicas(t *testing.T, obj client.Object, want int32) {
	t.Helper()
	eventually(t, wait, func() error {
		n, err := specReplicas(t, obj)
		if err != nil {
			return err
		}
		if n != want {
			return fmt.Errorf("%s replicas %d, want %d", obj.GetName(), n, want)
		}
		return nil
	})
}

// lagOf80 produces 80 records over 4 partitions of topic, never consumed.
func lagOf80(t *testing.T, addrs []string, topic string) {
	t.Helper()
	prod := kafkaClient(t, addrs, kgo.RecordPartitioner(kgo.ManualPartitioner()))
	for p := int32(0); p < 4; p++ {
		produceN(t, prod, topic, p, 20)
	}
}

// drain commits every end offset of topic for group: the group caught up.
func drain(t *testing.T, addrs []string, topic, group string) {
	t.Helper()
	adm := kadm.NewClient(kafkaClient(t, addrs))
	ends, err := adm.ListEndOffsets(context.Background(), topic)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := adm.CommitOffsets(context.Background(), group, ends.Offsets()); err != nil {
		t.Fatal(err)
	}
}

func waitReadyReason(t *testing.T, ns, name, reason string, msgHas ...string) *metav1.Condition {
	t.Helper()
	var got *metav1.Condition
	eventually(t, wait, func() error {
		c, _ := readyCondition(t, ns, name)
		if c == nil || c.Reason != reason {
			return fmt.Errorf("Ready %+v, want reason %s", c, reason)
		}
		for _, m := range msgHas {
			if !strings.Contains(c.Message, m) {
				return fmt.Errorf("Ready message %q does not name %q", c.Message, m)
			}
		}
		got = c
		return nil
	})
	return got
}

// findEvent waits for an event of the consumer with reason whose message
// contains every part.
func findEvent(t *testing.T, ns, reason string, parts ...string) corev1.Event {
	t.Helper()
	var found corev1.Event
	eventually(t, wait, func() error {
		list := &corev1.EventList{}
		if err := env.Client.List(context.Background(), list, client.InNamespace(ns)); err != nil {
			return err
		}
	next:
		for _, e := range list.Items {
			if e.Reason != reason {
				continue
			}
			for _, p := range parts {
				if !strings.Contains(e.Message, p) {
					continue next
				}
			}
			found = e
			return nil
		}
		return fmt.Errorf("no %s event with %q among %d events", reason, parts, len(list.Items))
	})
	return found
}

// managers returns the field managers of spec.replicas of a workload.
func managersOfReplicas(t *testing.T, obj client.Object) []string {
	t.Helper()
	cur := obj.DeepCopyObject().(client.Object)
	if err := env.Client.Get(context.Background(), client.ObjectKeyFromObject(obj), cur); err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range cur.GetManagedFields() {
		if ownsReplicas(e) {
			out = append(out, e.Manager+"/"+e.Subresource)
		}
	}
	return out
}

// TestScaleTargetScalesUserWorkloads: a Deployment and a StatefulSet that
// a user applied are scaled up and down through spec.scaleTargetRef by the
// scale subresource, nothing else of them changes, readyReplicas comes
// from the workload, and lagscale's writes carry its field manager.
func TestScaleTargetScalesUserWorkloads(t *testing.T) {
	kafka := startKafka(t, kfake.SeedTopics(6, "deploy-topic", "sts-topic"))
	addrs := kafka.ListenAddrs()
	startOperator(t, withFastEngine(t))
	ns := namespace(t)
	ctx := context.Background()

	for _, tc := range []struct {
		kind, topic string
		obj         client.Object
		setReady    func(n int32) error
	}{
		{kind: "Deployment", topic: "deploy-topic", obj: userDeployment(ns, "orders-consumer", 1)},
		{kind: "StatefulSet", topic: "sts-topic", obj: userStatefulSet(ns, "orders-sts", 1)},
	} {
		t.Run(tc.kind, func(t *testing.T) {
			applyAsUser(t, tc.obj)
			before := tc.obj.DeepCopyObject().(client.Object)
			if err := env.Client.Get(ctx, client.ObjectKeyFromObject(tc.obj), before); err != nil {
				t.Fatal(err)
			}
			ecName := strings.ToLower(tc.kind) + "-ec"
			createConsumer(t, ns, ecName, targetConsumer(addrs, tc.topic, "apps/v1", tc.kind, tc.obj.GetName()))

			// The workload's own ready count reaches the status, which the
			// scale subresource does not carry.
			setWorkloadReady(t, tc.obj, 1)
			eventually(t, wait, func() error {
				s := getConsumer(t, ns, ecName).Status
				if s.ReadyReplicas != 1 || s.Replicas != 1 || !strings.Contains(s.Selector, "app="+tc.obj.GetName()) {
					return fmt.Errorf("status replicas %d ready %d selector %q, want 1, 1, app=%s; conditions %s", s.Replicas, s.ReadyReplicas, s.Selector, tc.obj.GetName(), conditionsOf(s.Conditions))
				}
				return nil
			})

			lagOf80(t, addrs, tc.topic)
			waitReplicas(t, tc.obj, 4)
			eventually(t, wait, func() error {
				ls := getConsumer(t, ns, ecName).Status.LastScale
				if ls == nil || ls.From != 1 || ls.To != 4 {
					return fmt.Errorf("lastScale %+v, want 1 -> 4", ls)
				}
				return nil
			})
			if got := managersOfReplicas(t, tc.obj); len(got) != 1 || got[0] != FieldManager+"/scale" {
				t.Errorf("spec.replicas managed by %v, want only %s through the scale subresource", got, FieldManager)
			}

			drain(t, addrs, tc.topic, tc.topic+"-group")
			waitReplicas(t, tc.obj, 1)

			// Nothing but replicas changed: no owner, same labels, same pod
			// template, no injected environment.
			after := tc.obj.DeepCopyObject().(client.Object)
			if err := env.Client.Get(ctx, client.ObjectKeyFromObject(tc.obj), after); err != nil {
				t.Fatal(err)
			}
			if len(after.GetOwnerReferences()) != 0 {
				t.Errorf("owner references %v on the user's workload", after.GetOwnerReferences())
			}
			if fmt.Sprint(after.GetLabels()) != fmt.Sprint(before.GetLabels()) {
				t.Errorf("labels %v, were %v", after.GetLabels(), before.GetLabels())
			}
			if a, b := templateOf(after), templateOf(before); a != b {
				t.Errorf("pod template changed:\n%s\nwas\n%s", a, b)
			}
		})
	}
}

func templateOf(o client.Object) string {
	switch w := o.(type) {
	case *appsv1.Deployment:
		return w.Spec.Template.String()
	case *appsv1.StatefulSet:
		return w.Spec.Template.String()
	}
	return ""
}

// setWorkloadReady plays the workload controller, which envtest does not
// run: n replicas ready.
func setWorkloadReady(t *testing.T, obj client.Object, n int32) {
	t.Helper()
	eventually(t, wait, func() error {
		cur := obj.DeepCopyObject().(client.Object)
		if err := env.Client.Get(context.Background(), client.ObjectKeyFromObject(obj), cur); err != nil {
			return err
		}
		switch w := cur.(type) {
		case *appsv1.Deployment:
			w.Status.Replicas, w.Status.ReadyReplicas, w.Status.AvailableReplicas, w.Status.ObservedGeneration = n, n, n, w.Generation
		case *appsv1.StatefulSet:
			w.Status.Replicas, w.Status.ReadyReplicas, w.Status.AvailableReplicas, w.Status.ObservedGeneration = n, n, n, w.Generation
		}
		return env.Client.Status().Update(context.Background(), cur)
	})
}

// TestScaleTargetSurvivesConsumerDeletion runs Kubernetes' garbage
// collector: deleting an EventConsumer takes its own Deployment with it but
// leaves the workload it scaled at its current replicas.
func TestScaleTargetSurvivesConsumerDeletion(t *testing.T) {
	startGarbageCollector(t)
	kafka := startKafka(t, kfake.SeedTopics(6, "kept"))
	addrs := kafka.ListenAddrs()
	startOperator(t, withFastEngine(t))
	ns := namespace(t)
	ctx := context.Background()

	dep := userDeployment(ns, "kept-consumer", 1)
	applyAsUser(t, dep)
	ec := createConsumer(t, ns, "kept", targetConsumer(addrs, "kept", "apps/v1", "Deployment", dep.Name))
	lagOf80(t, addrs, "kept")
	waitReplicas(t, dep, 4)

	// The control: a consumer that owns its Deployment, deleted at the
	// same time, shows the garbage collector at work.
	owned := createConsumer(t, ns, "owned", v1alpha1.EventConsumerSpec{
		Topics: []string{"kept"}, ConsumerGroup: "other",
		Kafka:   v1alpha1.KafkaConnection{BootstrapServers: addrs},
		Handler: &v1alpha1.HandlerSpec{Image: "handler:1"},
	})
	waitDeployment(t, ns, "owned", nil)
	for _, o := range []client.Object{ec, owned} {
		if err := env.Client.Delete(ctx, o); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, 60*time.Second, func() error {
		if _, err := getDeployment(t, ns, "owned")(); !apierrors.IsNotFound(err) {
			return fmt.Errorf("owned Deployment still there (err %v)", err)
		}
		return nil
	})
	if n, err := specReplicas(t, dep); err != nil || n != 4 {
		t.Fatalf("the scaled workload after its EventConsumer was deleted: replicas %d, err %v; want it kept at 4", n, err)
	}
}

// TestScaleTargetHPAConflict: an HPA on the same workload (as KEDA makes)
// gives Ready=False ScaleTargetConflict naming it, and lagscale writes
// nothing although the lag asks for more; once the HPA is gone lagscale
// takes over by itself.
func TestScaleTargetHPAConflict(t *testing.T) {
	kafka := startKafka(t, kfake.SeedTopics(6, "contested"))
	addrs := kafka.ListenAddrs()
	startOperator(t, withFastEngine(t))
	ns := namespace(t)
	ctx := context.Background()

	dep := userDeployment(ns, "contested-consumer", 1)
	applyAsUser(t, dep)
	hpa := &autoscalingv2.HorizontalPodAutoscaler{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "keda-hpa-contested", Labels: map[string]string{"scaledobject.keda.sh/name": "contested"}},
		Spec: autoscalingv2.HorizontalPodAutoscalerSpec{
			ScaleTargetRef: autoscalingv2.CrossVersionObjectReference{APIVersion: "apps/v1", Kind: "Deployment", Name: dep.Name},
			MinReplicas:    ptrTo[int32](1), MaxReplicas: 10,
			Metrics: []autoscalingv2.MetricSpec{{Type: autoscalingv2.ResourceMetricSourceType, Resource: &autoscalingv2.ResourceMetricSource{
				Name: corev1.ResourceCPU, Target: autoscalingv2.MetricTarget{Type: autoscalingv2.UtilizationMetricType, AverageUtilization: ptrTo[int32](80)}}}},
		},
	}
	if err := env.Client.Create(ctx, hpa); err != nil {
		t.Fatal(err)
	}
	lagOf80(t, addrs, "contested")
	createConsumer(t, ns, "contested", targetConsumer(addrs, "contested", "apps/v1", "Deployment", dep.Name))

	c := waitReadyReason(t, ns, "contested", v1alpha1.ReasonScaleTargetConflict, hpa.Name, "KEDA ScaledObject contested")
	if c.Status != metav1.ConditionFalse {
		t.Errorf("Ready %s, want False", c.Status)
	}
	if e := findEvent(t, ns, v1alpha1.ReasonScaleTargetConflict, hpa.Name); e.Type != corev1.EventTypeWarning {
		t.Errorf("conflict event type %s, want Warning", e.Type)
	}
	// The lag that would scale it is read, several polls pass, and still
	// nothing is written.
	eventually(t, wait, func() error {
		if l := getConsumer(t, ns, "contested").Status.Lag; l == nil || l.Total != 80 {
			return fmt.Errorf("lag %+v, want 80 records read", l)
		}
		return nil
	})
	time.Sleep(3 * time.Second)
	if n, err := specReplicas(t, dep); err != nil || n != 1 {
		t.Fatalf("replicas %d (err %v) while an HPA scales the workload, want 1 (no write)", n, err)
	}
	for _, m := range managersOfReplicas(t, dep) {
		if strings.HasPrefix(m, FieldManager+"/") {
			t.Fatalf("lagscale wrote replicas during the conflict: managers %v", m)
		}
	}
	if ls := getConsumer(t, ns, "contested").Status.LastScale; ls != nil {
		t.Errorf("lastScale %+v during the conflict, want none", ls)
	}

	if err := env.Client.Delete(ctx, hpa); err != nil {
		t.Fatal(err)
	}
	waitReplicas(t, dep, 4)
}

// TestScaleTargetOtherFieldManager: a GitOps tool re-applying replicas
// after lagscale set them is named in a Warning event.
func TestScaleTargetOtherFieldManager(t *testing.T) {
	kafka := startKafka(t, kfake.SeedTopics(6, "gitops"))
	addrs := kafka.ListenAddrs()
	startOperator(t, withFastEngine(t))
	ns := namespace(t)
	ctx := context.Background()

	dep := userDeployment(ns, "gitops-consumer", 1)
	applyAsUser(t, dep)
	createConsumer(t, ns, "gitops", targetConsumer(addrs, "gitops", "apps/v1", "Deployment", dep.Name))
	lagOf80(t, addrs, "gitops")
	waitReplicas(t, dep, 4)

	// Argo CD syncs the manifest, which still says replicas: 2.
	sync := &unstructured.Unstructured{}
	sync.SetAPIVersion("apps/v1")
	sync.SetKind("Deployment")
	sync.SetNamespace(ns)
	sync.SetName(dep.Name)
	if err := unstructured.SetNestedField(sync.Object, int64(2), "spec", "replicas"); err != nil {
		t.Fatal(err)
	}
	if err := env.Client.Apply(ctx, client.ApplyConfigurationFromUnstructured(sync), client.FieldOwner("argocd-controller"), client.ForceOwnership); err != nil {
		t.Fatal(err)
	}
	e := findEvent(t, ns, v1alpha1.EventReplicasOverridden, "argocd-controller", "from 4 to 2")
	if e.Type != corev1.EventTypeWarning {
		t.Errorf("event type %s, want Warning", e.Type)
	}
	if strings.Contains(e.Message, userManager) {
		t.Errorf("event %q names %s, which did not change replicas", e.Message, userManager)
	}
}

// TestScaleTargetCreatedLate: a consumer whose workload does not exist yet
// is Ready=False ScaleTargetNotFound, and scales it as soon as it is
// created, well before the 30 s safety requeue. The topic has no records,
// so the lag does not change and brings no reconcile: the target watch
// does.
func TestScaleTargetCreatedLate(t *testing.T) {
	kafka := startKafka(t, kfake.SeedTopics(6, "late"))
	addrs := kafka.ListenAddrs()
	startOperator(t, withFastEngine(t))
	ns := namespace(t)

	spec := targetConsumer(addrs, "late", "apps/v1", "Deployment", "late-consumer")
	spec.Scaling.MinReplicas = ptrTo[int32](2)
	createConsumer(t, ns, "late", spec)
	waitReadyReason(t, ns, "late", v1alpha1.ReasonScaleTargetNotFound, "Deployment late-consumer does not exist")
	// Let the first lag reading in before the target appears.
	eventually(t, wait, func() error {
		if getConsumer(t, ns, "late").Status.Lag == nil {
			return fmt.Errorf("no lag reading yet")
		}
		return nil
	})

	dep := userDeployment(ns, "late-consumer", 1)
	applyAsUser(t, dep)
	start := time.Now()
	waitReplicas(t, dep, 2)
	if d := time.Since(start); d >= waitRequeue {
		t.Errorf("took %s: the target's creation did not bring the consumer back, the requeue did", d)
	}
}

// rolloutCRD is a minimal stand-in for an Argo Rollout: a namespaced kind
// with subresources.scale. withScale false leaves the subresource out.
func rolloutCRD(plural, kind string, withScale bool) *apiextensionsv1.CustomResourceDefinition {
	crd := &apiextensionsv1.CustomResourceDefinition{
		ObjectMeta: metav1.ObjectMeta{Name: plural + ".rollouts.test.lagscale.dev"},
		Spec: apiextensionsv1.CustomResourceDefinitionSpec{
			Group: "rollouts.test.lagscale.dev",
			Names: apiextensionsv1.CustomResourceDefinitionNames{Plural: plural, Singular: strings.ToLower(kind), Kind: kind, ListKind: kind + "List"},
			Scope: apiextensionsv1.NamespaceScoped,
			Versions: []apiextensionsv1.CustomResourceDefinitionVersion{{
				Name: "v1alpha1", Served: true, Storage: true,
				Schema: &apiextensionsv1.CustomResourceValidation{OpenAPIV3Schema: &apiextensionsv1.JSONSchemaProps{
					Type: "object", XPreserveUnknownFields: ptrTo(true),
				}},
			}},
		},
	}
	if withScale {
		crd.Spec.Versions[0].Subresources = &apiextensionsv1.CustomResourceSubresources{
			Status: &apiextensionsv1.CustomResourceSubresourceStatus{},
			Scale: &apiextensionsv1.CustomResourceSubresourceScale{
				SpecReplicasPath: ".spec.replicas", StatusReplicasPath: ".status.replicas", LabelSelectorPath: ptrTo(".status.selector"),
			},
		}
	}
	return crd
}

// installCRD creates crd, waits until it is served, and grants the operator
// what the chart's scaleTargets value grants for it.
func installCRD(t *testing.T, crd *apiextensionsv1.CustomResourceDefinition) {
	t.Helper()
	ctx := context.Background()
	// The test scheme has no apiextensions types: the CRD goes as the
	// unstructured object kubectl would send.
	raw, err := runtime.DefaultUnstructuredConverter.ToUnstructured(crd)
	if err != nil {
		t.Fatal(err)
	}
	u := &unstructured.Unstructured{Object: raw}
	u.SetGroupVersionKind(apiextensionsv1.SchemeGroupVersion.WithKind("CustomResourceDefinition"))
	// The control plane is the package's: a rerun (-count) finds the CRD.
	if err := env.Client.Create(ctx, u); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	eventually(t, wait, func() error {
		got := &unstructured.Unstructured{}
		got.SetGroupVersionKind(apiextensionsv1.SchemeGroupVersion.WithKind("CustomResourceDefinition"))
		if err := env.Client.Get(ctx, client.ObjectKey{Name: crd.Name}, got); err != nil {
			return err
		}
		conds, _, _ := unstructured.NestedSlice(got.Object, "status", "conditions")
		for _, c := range conds {
			if m, ok := c.(map[string]any); ok && m["type"] == string(apiextensionsv1.Established) && m["status"] == "True" {
				return nil
			}
		}
		return fmt.Errorf("CRD %s not established", crd.Name)
	})
	name := "scale-target-" + crd.Spec.Names.Plural
	group, plural := crd.Spec.Group, crd.Spec.Names.Plural
	role := &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: name}, Rules: []rbacv1.PolicyRule{
		{APIGroups: []string{group}, Resources: []string{plural + "/scale"}, Verbs: []string{"get", "update"}},
		{APIGroups: []string{group}, Resources: []string{plural}, Verbs: []string{"list", "watch"}},
	}}
	binding := &rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: name},
		RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: name},
		Subjects: []rbacv1.Subject{{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: testenv.OperatorUser}}}
	for _, o := range []client.Object{role, binding} {
		if err := env.Client.Create(ctx, o); err != nil && !apierrors.IsAlreadyExists(err) {
			t.Fatal(err)
		}
	}
}

// TestScaleTargetCustomResource scales a custom resource with a scale
// subresource (a stand-in for an Argo Rollout) the same way, and refuses a
// kind without one as ScaleTargetUnsupported.
func TestScaleTargetCustomResource(t *testing.T) {
	installCRD(t, rolloutCRD("rollouts", "Rollout", true))
	installCRD(t, rolloutCRD("jobsets", "JobSet", false))
	kafka := startKafka(t, kfake.SeedTopics(6, "rollout-topic", "jobset-topic"))
	addrs := kafka.ListenAddrs()
	startOperator(t, withFastEngine(t))
	ns := namespace(t)
	ctx := context.Background()

	ro := &unstructured.Unstructured{}
	ro.SetGroupVersionKind(schema.GroupVersionKind{Group: "rollouts.test.lagscale.dev", Version: "v1alpha1", Kind: "Rollout"})
	ro.SetNamespace(ns)
	ro.SetName("orders-rollout")
	if err := unstructured.SetNestedField(ro.Object, int64(1), "spec", "replicas"); err != nil {
		t.Fatal(err)
	}
	if err := env.Client.Apply(ctx, client.ApplyConfigurationFromUnstructured(ro), client.FieldOwner(userManager)); err != nil {
		t.Fatal(err)
	}
	createConsumer(t, ns, "rollout", targetConsumer(addrs, "rollout-topic", "rollouts.test.lagscale.dev/v1alpha1", "Rollout", ro.GetName()))
	lagOf80(t, addrs, "rollout-topic")
	waitReplicas(t, ro, 4)
	drain(t, addrs, "rollout-topic", "rollout-topic-group")
	waitReplicas(t, ro, 1)

	js := &unstructured.Unstructured{}
	js.SetGroupVersionKind(schema.GroupVersionKind{Group: "rollouts.test.lagscale.dev", Version: "v1alpha1", Kind: "JobSet"})
	js.SetNamespace(ns)
	js.SetName("batch")
	if err := unstructured.SetNestedField(js.Object, int64(1), "spec", "replicas"); err != nil {
		t.Fatal(err)
	}
	if err := env.Client.Apply(ctx, client.ApplyConfigurationFromUnstructured(js), client.FieldOwner(userManager)); err != nil {
		t.Fatal(err)
	}
	createConsumer(t, ns, "jobset", targetConsumer(addrs, "jobset-topic", "rollouts.test.lagscale.dev/v1alpha1", "JobSet", "batch"))
	waitReadyReason(t, ns, "jobset", v1alpha1.ReasonScaleTargetUnsupported, "has no scale subresource")
	ec := getConsumer(t, ns, "jobset")
	if c := meta.FindStatusCondition(ec.Status.Conditions, v1alpha1.ConditionStalled); c == nil || c.Status != metav1.ConditionTrue {
		t.Errorf("Stalled %+v, want True", c)
	}
}

// TestScaleTargetRefValidation: the API server refuses what cannot work
// beside scaleTargetRef, with a message that says what to do.
func TestScaleTargetRefValidation(t *testing.T) {
	ns := namespace(t)
	ctx := context.Background()
	ref := map[string]any{"apiVersion": "apps/v1", "kind": "Deployment", "name": "orders"}
	withTarget := func(m map[string]any) {
		delete(spec(m), "handler")
		spec(m)["scaleTargetRef"] = ref
	}
	tests := []struct {
		name   string
		mutate func(m map[string]any)
		want   string
	}{
		{"scaleTargetRef beside handler", func(m map[string]any) { spec(m)["scaleTargetRef"] = ref },
			"spec.scaleTargetRef cannot be combined with spec.handler or spec.template"},
		{"scaleTargetRef beside template", func(m map[string]any) {
			withTarget(m)
			spec(m)["template"] = map[string]any{"spec": map[string]any{"containers": []any{map[string]any{"name": "handler", "image": "h:1"}}}}
		}, "spec.scaleTargetRef cannot be combined with spec.handler or spec.template"},
		{"neither handler, template nor scaleTargetRef", func(m map[string]any) { delete(spec(m), "handler") },
			"or point spec.scaleTargetRef at a workload you deploy yourself"},
		{"deadLetterTopic beside scaleTargetRef", func(m map[string]any) { withTarget(m); spec(m)["deadLetterTopic"] = "orders-dlq" },
			"spec.deadLetterTopic cannot be set beside spec.scaleTargetRef"},
		{"apiVersion that is no group/version", func(m map[string]any) {
			withTarget(m)
			spec(m)["scaleTargetRef"] = map[string]any{"apiVersion": "apps", "kind": "Deployment", "name": "orders"}
		}, "scaleTargetRef.apiVersion must be group/version"},
		{"scaleTargetRef without a name", func(m map[string]any) {
			withTarget(m)
			spec(m)["scaleTargetRef"] = map[string]any{"apiVersion": "apps/v1", "kind": "Deployment"}
		}, "spec.scaleTargetRef.name: Required value"},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			requireRefused(t, ns, fmt.Sprintf("bad-target-%d", i), tt.mutate, tt.want)
		})
	}

	good := validConsumer("target")
	withTarget(good)
	u := &unstructured.Unstructured{Object: good}
	u.SetNamespace(ns)
	if err := env.Client.Create(ctx, u); err != nil {
		t.Fatalf("a valid scaleTargetRef manifest was refused: %v", err)
	}
	// Switching between a workload lagscale scales and one it owns is
	// refused both ways.
	delete(spec(u.Object), "scaleTargetRef")
	spec(u.Object)["handler"] = map[string]any{"image": "handler:1"}
	if err := env.Client.Update(ctx, u); err == nil || !strings.Contains(err.Error(), "cannot switch between spec.scaleTargetRef and spec.handler/spec.template") {
		t.Fatalf("switching from scaleTargetRef to handler: %v", err)
	}
	owned := &unstructured.Unstructured{Object: validConsumer("owned")}
	owned.SetNamespace(ns)
	if err := env.Client.Create(ctx, owned); err != nil {
		t.Fatal(err)
	}
	withTarget(owned.Object)
	if err := env.Client.Update(ctx, owned); err == nil || !strings.Contains(err.Error(), "cannot switch between spec.scaleTargetRef and spec.handler/spec.template") {
		t.Fatalf("switching from handler to scaleTargetRef: %v", err)
	}
}

// TestWriteReplicas is the retry policy of a scale write, with the API
// server's answers played by closures: a conflict from an unrelated change
// is retried on a fresh read, one from a change of replicas is returned so
// the next reconcile decides from the new count.
func TestWriteReplicas(t *testing.T) {
	conflict := apierrors.NewConflict(schema.GroupResource{Group: "apps", Resource: "deployments"}, "w", fmt.Errorf("the object has been modified"))
	scaleAt := func(rv string, replicas int32) *autoscalingv1.Scale {
		s := &autoscalingv1.Scale{}
		s.ResourceVersion, s.Spec.Replicas = rv, replicas
		return s
	}
	tests := []struct {
		name    string
		updates []error              // answers to successive updates
		fresh   *autoscalingv1.Scale // what a re-read returns
		wantErr bool
		wantRVs []string // resourceVersions the updates carried
	}{
		{name: "written at once", updates: []error{nil}, wantRVs: []string{"1"}},
		{name: "status changed in between: retried on the fresh read", updates: []error{conflict, nil}, fresh: scaleAt("2", 1), wantRVs: []string{"1", "2"}},
		{name: "replicas changed in between: not overwritten", updates: []error{conflict}, fresh: scaleAt("2", 3), wantErr: true, wantRVs: []string{"1"}},
		{name: "conflicts without end: gives up", updates: []error{conflict, conflict, conflict, nil}, fresh: scaleAt("2", 1), wantErr: true, wantRVs: []string{"1", "2", "2"}},
		{name: "other errors are returned as they are", updates: []error{apierrors.NewForbidden(schema.GroupResource{}, "w", fmt.Errorf("no"))}, wantErr: true, wantRVs: []string{"1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var rvs []string
			err := writeReplicas(scaleAt("1", 1), 4,
				func() (*autoscalingv1.Scale, error) { return tt.fresh.DeepCopy(), nil },
				func(s *autoscalingv1.Scale) error {
					if s.Spec.Replicas != 4 {
						t.Errorf("update with replicas %d, want 4", s.Spec.Replicas)
					}
					rvs = append(rvs, s.ResourceVersion)
					if len(rvs) > len(tt.updates) {
						t.Fatalf("update %d (resourceVersion %s): more writes than the case expects (%v so far)", len(rvs), s.ResourceVersion, rvs)
					}
					return tt.updates[len(rvs)-1]
				})
			if (err != nil) != tt.wantErr {
				t.Errorf("error %v, want error %t", err, tt.wantErr)
			}
			if fmt.Sprint(rvs) != fmt.Sprint(tt.wantRVs) {
				t.Errorf("updates carried resourceVersions %v, want %v", rvs, tt.wantRVs)
			}
		})
	}
}

// TestReplicaManagers reads who owns spec.replicas from managed fields.
func TestReplicaManagers(t *testing.T) {
	entry := func(manager, fields string) metav1.ManagedFieldsEntry {
		return metav1.ManagedFieldsEntry{Manager: manager, FieldsV1: metav1.NewFieldsV1(fields)}
	}
	tests := []struct {
		name    string
		entries []metav1.ManagedFieldsEntry
		want    []string
	}{
		{"lagscale alone", []metav1.ManagedFieldsEntry{entry(FieldManager, `{"f:spec":{"f:replicas":{}}}`)}, nil},
		{"another manager owns replicas", []metav1.ManagedFieldsEntry{
			entry("helm", `{"f:spec":{"f:template":{}}}`),
			entry("argocd-controller", `{"f:metadata":{},"f:spec":{"f:replicas":{},"f:selector":{}}}`),
		}, []string{"argocd-controller"}},
		{"replicas outside spec do not count", []metav1.ManagedFieldsEntry{entry("kubectl", `{"f:status":{"f:replicas":{}}}`)}, nil},
		{"no fields", []metav1.ManagedFieldsEntry{{Manager: "x"}}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := replicaManagers(tt.entries); fmt.Sprint(got) != fmt.Sprint(tt.want) {
				t.Errorf("managers %v, want %v", got, tt.want)
			}
			// The cache keeps exactly the entries that own replicas.
			m := trimMeta(metav1.ObjectMeta{Name: "w", ManagedFields: tt.entries})
			if got := replicaManagers(m.ManagedFields); fmt.Sprint(got) != fmt.Sprint(tt.want) {
				t.Errorf("after trimming for the cache: managers %v, want %v", got, tt.want)
			}
		})
	}
}

// TestTargetKey: an HPA naming another version of the same kind targets
// the same workload.
func TestTargetKey(t *testing.T) {
	tests := []struct {
		name string
		a, b [3]string
		same bool
	}{
		{"same workload", [3]string{"apps/v1", "Deployment", "w"}, [3]string{"apps/v1", "Deployment", "w"}, true},
		{"another version", [3]string{"argoproj.io/v1alpha1", "Rollout", "w"}, [3]string{"argoproj.io/v1", "Rollout", "w"}, true},
		{"another kind", [3]string{"apps/v1", "Deployment", "w"}, [3]string{"apps/v1", "StatefulSet", "w"}, false},
		{"another group", [3]string{"apps/v1", "Deployment", "w"}, [3]string{"example.com/v1", "Deployment", "w"}, false},
		{"another name", [3]string{"apps/v1", "Deployment", "w"}, [3]string{"apps/v1", "Deployment", "x"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := targetKey(tt.a[0], tt.a[1], tt.a[2]) == targetKey(tt.b[0], tt.b[1], tt.b[2]); got != tt.same {
				t.Errorf("same target %t, want %t", got, tt.same)
			}
		})
	}
}

// conditionsOf prints conditions for a failure message: what the
// reconciler last said when a wait ends without the status a test expects.
func conditionsOf(cs []metav1.Condition) string {
	var b strings.Builder
	for _, c := range cs {
		fmt.Fprintf(&b, "[%s=%s %s: %s] ", c.Type, c.Status, c.Reason, c.Message)
	}
	if b.Len() == 0 {
		return "none"
	}
	return b.String()
}
