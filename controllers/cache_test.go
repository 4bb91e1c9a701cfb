package controllers

import (
	"context"
	"fmt"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

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
