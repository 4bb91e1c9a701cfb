package controllers

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/lagscale/lagscale/api/v1alpha1"
)

// TestForeignDeploymentIsNotTakenOver: the cache holds only Deployments
// labelled managed-by=lagscale, so a Deployment of the consumer's name
// without the label is invisible to it. lagscale must still see it (a
// direct read) and refuse, not apply over someone else's Deployment.
func TestForeignDeploymentIsNotTakenOver(t *testing.T) {
	startOperator(t, nil)
	ns := namespace(t)
	ctx := context.Background()
	labels := map[string]string{"app": "theirs"}
	foreign := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "orders", Labels: labels},
		Spec: appsv1.DeploymentSpec{Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "theirs:1"}}}}},
	}
	if err := env.Client.Create(ctx, foreign); err != nil {
		t.Fatal(err)
	}
	createConsumer(t, ns, "orders", v1alpha1.EventConsumerSpec{
		Topics: []string{"t"}, ConsumerGroup: "g",
		Kafka:   v1alpha1.KafkaConnection{BootstrapServers: []string{"k:9092"}},
		Handler: &v1alpha1.HandlerSpec{Image: "handler:1"},
	})
	eventually(t, wait, func() error {
		c := meta.FindStatusCondition(getConsumer(t, ns, "orders").Status.Conditions, v1alpha1.ConditionReady)
		if c == nil || !strings.Contains(c.Message, "is not owned by this EventConsumer") {
			return fmt.Errorf("Ready %+v, want the foreign Deployment named", c)
		}
		return nil
	})
	got := &appsv1.Deployment{}
	if err := env.Client.Get(ctx, client.ObjectKeyFromObject(foreign), got); err != nil {
		t.Fatal(err)
	}
	if img := got.Spec.Template.Spec.Containers[0].Image; img != "theirs:1" || len(got.OwnerReferences) != 0 {
		t.Fatalf("the foreign Deployment was changed: image %s, owners %v", img, got.OwnerReferences)
	}
}

// apiserverRequests sums the API server's own apiserver_request_total
// (from its /metrics) over the label sets whose line holds every one of
// labels, such as `resource="secrets"` and `verb="GET"`.
func apiserverRequests(t *testing.T, labels ...string) float64 {
	t.Helper()
	rc, err := rest.RESTClientFor(restConfigForMetrics(env.Admin))
	if err != nil {
		t.Fatal(err)
	}
	raw, err := rc.Get().AbsPath("/metrics").DoRaw(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	total := 0.0
lines:
	for _, line := range strings.Split(string(raw), "\n") {
		if !strings.HasPrefix(line, "apiserver_request_total{") {
			continue
		}
		for _, l := range labels {
			if !strings.Contains(line, l) {
				continue lines
			}
		}
		f := strings.Fields(line)
		v, err := strconv.ParseFloat(f[len(f)-1], 64)
		if err != nil {
			t.Fatalf("metric line %q: %v", line, err)
		}
		total += v
	}
	return total
}

// secretGets is the API server's count of GET requests for Secrets.
func secretGets(t *testing.T) float64 {
	return apiserverRequests(t, `resource="secrets"`, `verb="GET"`)
}

func restConfigForMetrics(c *rest.Config) *rest.Config {
	cfg := rest.CopyConfig(c)
	cfg.GroupVersion = &schema.GroupVersion{}
	cfg.APIPath = "/"
	cfg.NegotiatedSerializer = serializer.NewCodecFactory(runtime.NewScheme()).WithoutConversion()
	return cfg
}

// TestSecretReadsUseTheCache: a consumer that references a Secret reads its
// metadata from the informer cache and its content once per
// resourceVersion, so the API server sees no Secret GET however often the
// consumer is reconciled. The Secret's content is dropped once no consumer
// references it.
func TestSecretReadsUseTheCache(t *testing.T) {
	op := startOperator(t, nil)
	ns := namespace(t)
	ctx := context.Background()
	secret := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "creds"},
		StringData: map[string]string{"username": "u", "password": "p"},
	}
	if err := env.Client.Create(ctx, secret); err != nil {
		t.Fatal(err)
	}
	createConsumer(t, ns, "reads", v1alpha1.EventConsumerSpec{
		Topics: []string{"t"}, ConsumerGroup: "g",
		Kafka: v1alpha1.KafkaConnection{
			BootstrapServers: []string{"localhost:9092"},
			SASL:             &v1alpha1.SASLConfig{Mechanism: v1alpha1.SASLPlain, SecretRef: v1alpha1.LocalObjectRef{Name: "creds"}},
		},
		Handler: &v1alpha1.HandlerSpec{Image: "handler:1"},
	})
	waitDeployment(t, ns, "reads", nil)
	req := reconcile.Request{NamespacedName: types.NamespacedName{Namespace: ns, Name: "reads"}}
	// One reconcile first, so the content is held and the count settles.
	if _, err := op.rec.Reconcile(ctx, req); err != nil {
		t.Fatal(err)
	}
	before := secretGets(t)
	for range 100 {
		if _, err := op.rec.Reconcile(ctx, req); err != nil {
			t.Fatal(err)
		}
	}
	if after := secretGets(t); after != before {
		t.Fatalf("100 reconciles made %v Secret GETs at the API server, want 0: Secret metadata must come from the cache", after-before)
	}
	if n := op.rec.secrets.held(); n != 1 {
		t.Fatalf("%d Secrets held, want the one referenced", n)
	}

	// Deleted, the consumer references nothing: the content goes.
	ec := getConsumer(t, ns, "reads")
	if err := env.Client.Delete(ctx, ec); err != nil {
		t.Fatal(err)
	}
	eventually(t, wait, func() error {
		if n := op.rec.secrets.held(); n != 0 {
			return fmt.Errorf("%d Secrets still held after the only consumer referencing one was deleted", n)
		}
		return nil
	})
}
