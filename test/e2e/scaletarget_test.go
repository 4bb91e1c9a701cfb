//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/lagscale/lagscale/api/v1alpha1"
	"github.com/lagscale/lagscale/controllers"
	"github.com/lagscale/lagscale/internal/deploy"
	"github.com/lagscale/lagscale/internal/sandbox"
)

// The scaleTargetRef test's workload: the user's Deployment of the Go
// example handler, 8 partitions, 50 ms a record and one partition at a
// time per replica (20 records/s each, 160/s for the whole group), a
// 10 s time-lag target, a 2 s poll and a 20 s stabilization window.
const (
	stNamespace  = "default"
	stDeployment = "orders-consumer"
	stConsumer   = "orders"
	stTopic      = "st-orders"
	stGroup      = "orders-consumer"
	stParts      = 8
	stWorkMS     = 50
	stTarget     = 10
	stPoll       = 2
	stStabilize  = 20
	stBurst      = 6000
	// userManager is the field manager of `kubectl apply --server-side`.
	userManager = "kubectl"
)

// stManifest is what a user applies: a ConfigMap with the Kafka settings
// and a Deployment that reads them, with no replicas (lagscale sets them,
// as docs/migrate-from-keda.md asks of GitOps manifests), none of
// lagscale's labels, and its own env: the handler contract is not
// injected into a scaleTargetRef workload, so the user's manifest sets
// KAFKA_BOOTSTRAP_SERVERS, KAFKA_TOPICS, KAFKA_CONSUMER_GROUP and the
// offset reset itself.
const stManifest = `apiVersion: v1
kind: ConfigMap
metadata:
  name: orders-kafka
  namespace: %[1]s
data:
  KAFKA_BOOTSTRAP_SERVERS: %[2]s
  KAFKA_TOPICS: %[3]s
  KAFKA_CONSUMER_GROUP: %[4]s
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: %[5]s
  namespace: %[1]s
  labels: {app: orders}
spec:
  selector:
    matchLabels: {app: orders}
  template:
    metadata:
      labels: {app: orders}
    spec:
      terminationGracePeriodSeconds: 30
      containers:
        - name: orders
          image: %[6]s
          envFrom:
            - configMapRef: {name: orders-kafka}
          env:
            - {name: KAFKA_AUTO_OFFSET_RESET, value: earliest}
            - {name: WORK_MS, value: "%[7]d"}
            - {name: CONCURRENCY, value: "1"}
            - {name: HANDLED_LOG, value: %[8]s}
`

// TestSandboxScaleTargetRef is issue 26's end-to-end check: a Deployment
// of the example handler that a user applies through the API, with its
// own env, is scaled 1 -> N -> 1 by an EventConsumer with
// spec.scaleTargetRef under a burst. The sandbox's pod runner runs its
// pods although lagscale did not create them, no produced record goes
// unhandled, lagscale changes nothing in the Deployment but its replicas,
// and deleting the EventConsumer leaves the Deployment where it is.
func TestSandboxScaleTargetRef(t *testing.T) {
	r := root(t)
	requireGoTools(t, r)
	s := upInProcess(t, r)
	ctx := context.Background()
	bootstrap := s.KafkaAddr()
	if err := sandbox.CreateTopic(ctx, bootstrap, stTopic, stParts); err != nil {
		t.Fatal(err)
	}
	handledLog := filepath.Join(s.Dir(), "handled.log")
	applied := applyAsUser(ctx, t, s.Client, fmt.Sprintf(stManifest, stNamespace, bootstrap, stTopic, stGroup, stDeployment, sandbox.ExampleHandlerImage, stWorkMS, handledLog))
	if err := s.Client.Create(ctx, scaleTargetConsumer(bootstrap)); err != nil {
		t.Fatal(err)
	}
	eventually(t, 2*time.Minute, "the user's pod runs and its handler joins the group", func() (bool, string) {
		cur := getEC(t, s.Client, stNamespace, stConsumer)
		ok := len(s.Runner().Running()) == 1 && cur != nil && cur.Status.Lag != nil && cur.Status.Lag.Members == 1 &&
			condition(cur, v1alpha1.ConditionReady) == "True"
		return ok, fmt.Sprintf("handler processes=%d; %s", len(s.Runner().Running()), describe(cur))
	})

	produceN(ctx, t, bootstrap, stTopic, stBurst, 1000)
	most := waitScaledOut(t, s)
	eventually(t, 6*time.Minute, "the lag drains", func() (bool, string) {
		cur := getEC(t, s.Client, stNamespace, stConsumer)
		return cur != nil && cur.Status.Lag != nil && cur.Status.Lag.Total == 0, describe(cur)
	})
	eventually(t, time.Duration(stStabilize)*time.Second+3*time.Minute, "the Deployment returns to 1 replica after the stabilization window", func() (bool, string) {
		dep := getDeployment(t, s.Client)
		cur := getEC(t, s.Client, stNamespace, stConsumer)
		procs := len(s.Runner().Running())
		return ptr.Deref(dep.Spec.Replicas, 0) == 1 && dep.Status.Replicas == 1 && procs == 1 && cur != nil && cur.Status.DesiredReplicas == 1,
			fmt.Sprintf("deployment replicas=%d/%d handler processes=%d; %s", dep.Status.Replicas, ptr.Deref(dep.Spec.Replicas, 0), procs, describe(cur))
	})

	h, produced := checkAllHandled(t, handledLog, stTopic, endOffsets(t, bootstrap, stTopic))
	if produced != stBurst {
		t.Fatalf("topic holds %d records, want the %d produced", produced, stBurst)
	}
	checkOnlyReplicasChanged(ctx, t, s.Client, applied)
	deleteLeavesDeployment(ctx, t, s.Client)
	t.Logf("%d records produced, %d handled (with redeliveries); the user's Deployment went 1 -> %d -> 1 replicas", produced, h, most)
}

// upInProcess brings the sandbox up in this test process on a free Kafka
// port and stops it by PID on cleanup, failing if any process it recorded
// is still alive afterwards.
func upInProcess(t *testing.T, r string) *sandbox.Sandbox {
	dir := t.TempDir()
	s, err := sandbox.Up(context.Background(), sandbox.Options{Dir: dir, Root: r, KafkaPort: freePort(t), APIPort: 0, Progress: os.Stderr})
	if err != nil {
		t.Fatal(err)
	}
	seen, _ := sandbox.RecordedPIDs(dir)
	t.Cleanup(func() {
		pids, _ := sandbox.RecordedPIDs(dir)
		seen = append(seen, pids...)
		for _, line := range s.Stop() {
			t.Log("stopped", line)
		}
		// The sandbox's supervisor is this test process; everything else
		// it recorded must be gone.
		seen = slices.DeleteFunc(seen, func(p int) bool { return p == os.Getpid() })
		if left := alivePIDs(seen); len(left) > 0 {
			t.Errorf("processes left behind: %v", left)
		}
	})
	return s
}

// applyAsUser applies each YAML document of manifest with server-side
// apply under the field manager of `kubectl apply --server-side`, and
// returns the Deployment it applied.
func applyAsUser(ctx context.Context, t *testing.T, c client.Client, manifest string) *appsv1.Deployment {
	t.Helper()
	var dep *appsv1.Deployment
	for _, doc := range strings.Split(manifest, "\n---\n") {
		u := &unstructured.Unstructured{}
		if err := yaml.Unmarshal([]byte(doc), &u.Object); err != nil {
			t.Fatal(err)
		}
		if err := c.Apply(ctx, client.ApplyConfigurationFromUnstructured(u), client.FieldOwner(userManager)); err != nil {
			t.Fatalf("apply %s %s: %v", u.GetKind(), u.GetName(), err)
		}
		if u.GetKind() == "Deployment" {
			dep = &appsv1.Deployment{}
			if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, dep); err != nil {
				t.Fatal(err)
			}
		}
	}
	if dep == nil {
		t.Fatal("the manifest has no Deployment")
	}
	return dep
}

// scaleTargetConsumer is the EventConsumer that scales the user's
// Deployment: no handler, no template, no dead-letter topic.
func scaleTargetConsumer(bootstrap string) *v1alpha1.EventConsumer {
	ec := &v1alpha1.EventConsumer{}
	ec.Namespace, ec.Name = stNamespace, stConsumer
	ec.Spec = v1alpha1.EventConsumerSpec{
		Topics:         []string{stTopic},
		ConsumerGroup:  stGroup,
		Kafka:          v1alpha1.KafkaConnection{BootstrapServers: []string{bootstrap}},
		ScaleTargetRef: &v1alpha1.ScaleTargetRef{APIVersion: "apps/v1", Kind: "Deployment", Name: stDeployment},
		Scaling: v1alpha1.ScalingSpec{
			MinReplicas:                   ptr.To[int32](1),
			Policy:                        v1alpha1.PolicyTimeLag,
			MaxLagSeconds:                 ptr.To[int32](stTarget),
			ScaleDownStabilizationSeconds: ptr.To[int32](stStabilize),
			PollIntervalSeconds:           ptr.To[int32](stPoll),
			OffsetResetPolicy:             v1alpha1.OffsetResetEarliest,
		},
	}
	return ec
}

func getDeployment(t *testing.T, c client.Client) *appsv1.Deployment {
	t.Helper()
	dep := &appsv1.Deployment{}
	if err := c.Get(context.Background(), client.ObjectKey{Namespace: stNamespace, Name: stDeployment}, dep); err != nil {
		t.Fatalf("get the user's Deployment: %v", err)
	}
	return dep
}

// waitScaledOut waits for the burst to scale the Deployment above one
// replica, with the pod runner running one handler per replica and every
// one of them in the group, and returns the most replicas seen. The
// replicas can never exceed the partitions.
func waitScaledOut(t *testing.T, s *sandbox.Sandbox) int32 {
	var most int32
	eventually(t, 3*time.Minute, "the burst scales the Deployment out, one running handler per replica, all in the group", func() (bool, string) {
		dep := getDeployment(t, s.Client)
		cur := getEC(t, s.Client, stNamespace, stConsumer)
		want := ptr.Deref(dep.Spec.Replicas, 0)
		most = max(most, want)
		if want > stParts {
			t.Fatalf("the Deployment has %d replicas, more than the %d partitions", want, stParts)
		}
		procs := len(s.Runner().Running())
		ok := want > 1 && dep.Status.ReadyReplicas == want && procs == int(want) &&
			cur != nil && cur.Status.Lag != nil && cur.Status.Lag.Members == want
		return ok, fmt.Sprintf("deployment replicas=%d ready=%d handler processes=%d; %s", want, dep.Status.ReadyReplicas, procs, describe(cur))
	})
	return most
}

// checkOnlyReplicasChanged holds the Deployment against what the user
// applied: lagscale owns no field of it but spec.replicas (through the
// scale subresource), adds no owner, label or env, and no other manager
// overrode the replicas.
func checkOnlyReplicasChanged(ctx context.Context, t *testing.T, c client.Client, applied *appsv1.Deployment) {
	t.Helper()
	dep := getDeployment(t, c)
	if len(dep.OwnerReferences) > 0 {
		t.Errorf("the user's Deployment has owners %v, want none", dep.OwnerReferences)
	}
	if _, ok := dep.Labels[deploy.LabelConsumer]; ok {
		t.Errorf("the user's Deployment has lagscale's label %s", deploy.LabelConsumer)
	}
	got, want := dep.Spec.Template.Spec.Containers, applied.Spec.Template.Spec.Containers
	if len(got) != 1 || !reflect.DeepEqual(got[0].Env, want[0].Env) || !reflect.DeepEqual(got[0].EnvFrom, want[0].EnvFrom) {
		t.Errorf("the container's env is not what the user applied: got %+v, want %+v", got, want)
	}
	// With replicas in no manifest, no manager owns them and the API
	// server records no entry for the writes through /scale (it tracks no
	// update of an object without managed fields, here the Scale); what
	// lagscale may never have is an entry on the Deployment itself.
	for _, m := range dep.ManagedFields {
		if m.Manager == controllers.FieldManager && m.Subresource != "scale" {
			t.Errorf("lagscale manages fields of the Deployment outside its scale subresource: %s", m.FieldsV1.String())
		}
	}
	var events corev1.EventList
	if err := c.List(ctx, &events, client.InNamespace(stNamespace)); err != nil {
		t.Fatal(err)
	}
	for _, e := range events.Items {
		if e.Reason == v1alpha1.EventReplicasOverridden {
			t.Errorf("unexpected %s event: %s", e.Reason, e.Message)
		}
	}
}

// deleteLeavesDeployment deletes the EventConsumer: the Deployment, which
// lagscale never owned, stays at its replicas.
func deleteLeavesDeployment(ctx context.Context, t *testing.T, c client.Client) {
	t.Helper()
	before := getDeployment(t, c)
	ec := &v1alpha1.EventConsumer{}
	ec.Namespace, ec.Name = stNamespace, stConsumer
	if err := c.Delete(ctx, ec); err != nil {
		t.Fatal(err)
	}
	eventually(t, time.Minute, "the EventConsumer is gone", func() (bool, string) {
		err := c.Get(ctx, client.ObjectKey{Namespace: stNamespace, Name: stConsumer}, &v1alpha1.EventConsumer{})
		return apierrors.IsNotFound(err), fmt.Sprint(err)
	})
	after := getDeployment(t, c)
	if after.UID != before.UID || ptr.Deref(after.Spec.Replicas, 0) != ptr.Deref(before.Spec.Replicas, 0) {
		t.Fatalf("deleting the EventConsumer changed the Deployment: replicas %d -> %d, uid %s -> %s",
			ptr.Deref(before.Spec.Replicas, 0), ptr.Deref(after.Spec.Replicas, 0), before.UID, after.UID)
	}
}
