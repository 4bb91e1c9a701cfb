package main

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/lagscale/lagscale/api/v1alpha1"
	"github.com/lagscale/lagscale/internal/testenv"
)

func testdata(name string) string {
	return filepath.Join(testenv.Root(), "internal", "migrate", "testdata", name)
}

// migrateCLI runs `lagscale migrate` and returns stdout, stderr and the
// error it would exit non-zero with.
func migrateCLI(stdin string, args ...string) (string, string, error) {
	var out, errOut bytes.Buffer
	err := runMigrate(args, strings.NewReader(stdin), &out, &errOut)
	return out.String(), errOut.String(), err
}

// apply creates every object of a YAML stream, as kubectl apply would,
// creating their namespaces first.
func apply(t *testing.T, c client.Client, stream string) {
	t.Helper()
	ctx := context.Background()
	dec := utilyaml.NewYAMLOrJSONDecoder(strings.NewReader(stream), 4096)
	n := 0
	for {
		u := &unstructured.Unstructured{}
		if err := dec.Decode(&u.Object); err != nil {
			if errors.Is(err, io.EOF) {
				break
			}
			t.Fatalf("output is not YAML: %v\n%s", err, stream)
		}
		if ns := u.GetNamespace(); ns != "" {
			if err := c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil && !strings.Contains(err.Error(), "already exists") {
				t.Fatal(err)
			}
		}
		if err := c.Create(ctx, u); err != nil {
			t.Fatalf("the API server rejected %s %s: %v\n%s", u.GetKind(), u.GetName(), err, stream)
		}
		n++
	}
	if n == 0 {
		t.Fatalf("nothing to apply in:\n%q", stream)
	}
}

func getConsumer(t *testing.T, c client.Client, ns, name string) *v1alpha1.EventConsumer {
	t.Helper()
	ec := &v1alpha1.EventConsumer{}
	if err := c.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, ec); err != nil {
		t.Fatal(err)
	}
	return ec
}

// TestMigrateAppliesToAPIServer converts manifests equivalent to the
// examples of KEDA's Kafka scaler documentation, applies the output to the
// real API server (CRD schema and CEL rules decide), and checks each
// mapping on what the server stored.
func TestMigrateAppliesToAPIServer(t *testing.T) {
	env, err := testenv.Start()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = env.Stop() })
	c := env.Client

	t.Run("keeps the workload", func(t *testing.T) { migrateKeepsWorkload(t, c) })
	t.Run("plain", func(t *testing.T) { migratePlainOwned(t, c) })
	t.Run("sasl and tls from a Secret", func(t *testing.T) { migrateSASLAndTLSFromSecret(t, c) })
	t.Run("shared brokers", func(t *testing.T) { migrateSharedBrokers(t, c) })
	t.Run("from cluster", func(t *testing.T) { migrateFromCluster(t, env) })
}

// migrateKeepsWorkload: a kept workload is scaled through scaleTargetRef, and applying the
// migration leaves the Deployment untouched.
func migrateKeepsWorkload(t *testing.T, c client.Client) {
	// The user's Deployment, as Helm installed it, and KEDA's
	// ScaledObject on it.
	ctx := context.Background()
	if err := c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "keep"}}); err != nil {
		t.Fatal(err)
	}
	raw, err := readFile(testdata("plain.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	raw = strings.ReplaceAll(raw, "namespace: billing", "namespace: keep")
	dep := &unstructured.Unstructured{}
	if err := utilyaml.NewYAMLOrJSONDecoder(strings.NewReader(raw), 4096).Decode(&dep.Object); err != nil || dep.GetKind() != "Deployment" {
		t.Fatalf("the first object of plain.yaml should be the Deployment: %v", err)
	}
	if err := c.Create(ctx, dep); err != nil {
		t.Fatal(err)
	}
	before := &appsv1.Deployment{}
	if err := c.Get(ctx, client.ObjectKey{Namespace: "keep", Name: "invoice-worker"}, before); err != nil {
		t.Fatal(err)
	}

	out, report, err := migrateCLI(raw, "-f", "-")
	if err != nil {
		t.Fatalf("%v\n%s", err, report)
	}
	apply(t, c, out)
	ec := getConsumer(t, c, "keep", "invoice-worker")
	if r := ec.Spec.ScaleTargetRef; r == nil || r.APIVersion != "apps/v1" || r.Kind != "Deployment" || r.Name != "invoice-worker" {
		t.Errorf("stored scaleTargetRef %+v, want apps/v1 Deployment invoice-worker", r)
	}
	if ec.Spec.Template != nil || ec.Spec.Handler != nil {
		t.Errorf("stored EventConsumer carries a workload of its own: %+v", ec.Spec)
	}
	after := &appsv1.Deployment{}
	if err := c.Get(ctx, client.ObjectKey{Namespace: "keep", Name: "invoice-worker"}, after); err != nil {
		t.Fatal(err)
	}
	if after.ResourceVersion != before.ResourceVersion {
		t.Errorf("applying the migration changed the Deployment (resourceVersion %s -> %s)", before.ResourceVersion, after.ResourceVersion)
	}
	for _, want := range []string{"Apply this EventConsumer, then delete the ScaledObject", "kubectl delete scaledobject -n keep invoice-worker"} {
		if !strings.Contains(report, want) {
			t.Errorf("report lacks %q:\n%s", want, report)
		}
	}
}

// migratePlainOwned: with --own every mapped field of plain.yaml is stored as mapped, the
// Deployment's pod template included.
func migratePlainOwned(t *testing.T, c client.Client) {
	out, report, err := migrateCLI("", "-f", testdata("plain.yaml"), "--own")
	if err != nil {
		t.Fatalf("%v\n%s", err, report)
	}
	apply(t, c, out)
	ec := getConsumer(t, c, "billing", "invoice-worker")
	s := ec.Spec.Scaling
	checks := map[string]bool{
		"consumerGroup invoices":                ec.Spec.ConsumerGroup == "invoices",
		"topics [invoices.created]":             len(ec.Spec.Topics) == 1 && ec.Spec.Topics[0] == "invoices.created",
		"two bootstrap servers":                 len(ec.Spec.Kafka.BootstrapServers) == 2,
		"policy LagThreshold":                   s.Policy == v1alpha1.PolicyLagThreshold,
		"lagThreshold 50":                       s.LagThreshold != nil && *s.LagThreshold == 50,
		"activationLag 5":                       s.ActivationLag != nil && *s.ActivationLag == 5,
		"minReplicas 0":                         s.MinReplicas != nil && *s.MinReplicas == 0,
		"maxReplicas 12":                        s.MaxReplicas != nil && *s.MaxReplicas == 12,
		"pollIntervalSeconds 15":                s.PollIntervalSeconds != nil && *s.PollIntervalSeconds == 15,
		"scaleDownStabilizationSeconds 600":     s.ScaleDownStabilizationSeconds != nil && *s.ScaleDownStabilizationSeconds == 600,
		"offsetResetPolicy earliest":            s.OffsetResetPolicy == v1alpha1.OffsetResetEarliest,
		"allowIdleConsumers false":              !s.AllowIdleConsumers,
		"template image from the Deployment":    ec.Spec.Template != nil && ec.Spec.Template.Spec.Containers[0].Image == "registry.example.com/invoice-worker:1.4.2",
		"template args from the Deployment":     ec.Spec.Template != nil && len(ec.Spec.Template.Spec.Containers[0].Args) == 2,
		"template labels from the Deployment":   ec.Spec.Template != nil && ec.Spec.Template.Labels["app"] == "invoice-worker",
		"contract env dropped, LOG_LEVEL kept":  ec.Spec.Template != nil && len(ec.Spec.Template.Spec.Containers[0].Env) == 1,
		"server defaults apply to the rest too": s.BurstMemorySeconds != nil,
	}
	for what, ok := range checks {
		if !ok {
			t.Errorf("stored EventConsumer: want %s; spec %+v", what, ec.Spec)
		}
	}
	for _, want := range []string{"unsupported   spec.triggers[0].metadata.excludePersistentLag", "approximated  spec.cooldownPeriod", "mapped        spec.triggers[0].metadata.lagThreshold"} {
		if !strings.Contains(report, want) {
			t.Errorf("report lacks %q:\n%s", want, report)
		}
	}
}

// migrateSASLAndTLSFromSecret: SASL and TLS kept in a Secret need the flags, and the Secret's
// values never reach the output.
func migrateSASLAndTLSFromSecret(t *testing.T, c client.Client) {
	if _, report, err := migrateCLI("", "-f", testdata("sasl-tls.yaml")); err == nil || !strings.Contains(report, "pass --sasl") {
		t.Fatalf("want a non-zero exit asking for --sasl, got %v\n%s", err, report)
	}
	raw, err := readFile(testdata("sasl-tls.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	out, report, err := migrateCLI(raw, "-f", "-", "--sasl", "scram_sha512", "--tls", "enable")
	if err != nil {
		t.Fatalf("%v\n%s", err, report)
	}
	if strings.Contains(out, "not-a-real-password") || strings.Contains(out, "kind: Secret") {
		t.Fatalf("the output copies the Secret:\n%s", out)
	}
	apply(t, c, out)
	k := getConsumer(t, c, "ledger", "ledger-sync").Spec.Kafka
	if k.SASL == nil || k.SASL.Mechanism != v1alpha1.SASLScramSHA512 || k.SASL.SecretRef.Name != "ledger-kafka" {
		t.Errorf("stored sasl = %+v", k.SASL)
	}
	if k.TLS == nil || k.TLS.CASecretRef == nil || k.TLS.CASecretRef.Key != "ca" || k.TLS.CertSecretRef == nil || k.TLS.KeySecretRef == nil || k.TLS.KeySecretRef.Key != "key" {
		t.Errorf("stored tls = %+v", k.TLS)
	}
}

// migrateSharedBrokers: consumers on the same brokers, TLS and SASL share a stored
// KafkaCluster.
func migrateSharedBrokers(t *testing.T, c client.Client) {
	out, report, err := migrateCLI("", "-f", testdata("shared.yaml"))
	if err != nil {
		t.Fatalf("%v\n%s", err, report)
	}
	apply(t, c, out)
	kc := &v1alpha1.KafkaCluster{}
	if err := c.Get(context.Background(), client.ObjectKey{Namespace: "shop", Name: "kafka-0-shop-svc"}, kc); err != nil {
		t.Fatal(err)
	}
	if kc.Spec.SASL == nil || kc.Spec.SASL.Mechanism != v1alpha1.SASLScramSHA256 || kc.Spec.TLS == nil || kc.Spec.TLS.CASecretRef.Name != "shop-kafka-ca" {
		t.Errorf("stored KafkaCluster = %+v", kc.Spec)
	}
	for _, name := range []string{"orders", "refunds"} {
		ec := getConsumer(t, c, "shop", name)
		if ec.Spec.Kafka.ClusterRef == nil || ec.Spec.Kafka.ClusterRef.Name != kc.Name {
			t.Errorf("%s: kafka = %+v", name, ec.Spec.Kafka)
		}
	}
}

// migrateFromCluster: --from-cluster reads the Deployment missing from the files.
func migrateFromCluster(t *testing.T, env *testenv.Env) {
	c := env.Client
	// The ScaledObject alone in the file; its Deployment is in the
	// cluster.
	ctx := context.Background()
	if err := c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "payments"}}); err != nil {
		t.Fatal(err)
	}
	labels := map[string]string{"app": "payer"}
	d := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "payer", Namespace: "payments"},
		Spec: appsv1.DeploymentSpec{
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "payer", Image: "registry.example.com/payer:3.1.0"}}},
			},
		},
	}
	if err := c.Create(ctx, d); err != nil {
		t.Fatal(err)
	}
	kubeconfig := filepath.Join(t.TempDir(), "kubeconfig")
	if err := env.WriteKubeconfig(kubeconfig); err != nil {
		t.Fatal(err)
	}
	so := `
apiVersion: keda.sh/v1alpha1
kind: ScaledObject
metadata: {name: payer, namespace: payments}
spec:
  scaleTargetRef: {name: payer}
  triggers:
    - type: kafka
      metadata: {bootstrapServers: "kafka.payments.svc:9092", consumerGroup: payer, topic: payments}
`
	if _, report, err := migrateCLI(so, "-f", "-", "--own"); err == nil || !strings.Contains(report, "--from-cluster") {
		t.Fatalf("without --from-cluster: want a non-zero exit pointing to it, got %v\n%s", err, report)
	}
	out, report, err := migrateCLI(so, "-f", "-", "--own", "--from-cluster", "--kubeconfig", kubeconfig)
	if err != nil {
		t.Fatalf("%v\n%s", err, report)
	}
	apply(t, c, out)
	ec := getConsumer(t, c, "payments", "payer")
	if ec.Spec.Template == nil || ec.Spec.Template.Spec.Containers[0].Image != "registry.example.com/payer:3.1.0" {
		t.Errorf("template = %+v", ec.Spec.Template)
	}
}

// TestMigrateBadInput checks the CLI's exit and messages for input it
// cannot use.
func TestMigrateBadInput(t *testing.T) {
	tests := []struct {
		name, stdin, want string
	}{
		{"not YAML", "{{{ not yaml", "is not YAML"},
		{"no Kafka trigger", "apiVersion: keda.sh/v1alpha1\nkind: ScaledObject\nmetadata: {name: a}\nspec:\n  scaleTargetRef: {name: a}\n  triggers: [{type: cpu, metadata: {value: \"1\"}}]\n", "no kafka or apache-kafka trigger"},
		{"unknown auth reference", "apiVersion: keda.sh/v1alpha1\nkind: ScaledObject\nmetadata: {name: a, namespace: team}\nspec:\n  scaleTargetRef: {name: a}\n  triggers: [{type: kafka, metadata: {bootstrapServers: \"k:1\", consumerGroup: g, topic: t}, authenticationRef: {name: nope}}]\n", "TriggerAuthentication team/nope is not in the input"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, report, err := migrateCLI(tt.stdin, "-f", "-")
			if err == nil {
				t.Fatalf("want an error (non-zero exit); stdout:\n%s", out)
			}
			if msg := err.Error() + "\n" + report; !strings.Contains(msg, tt.want) {
				t.Errorf("want %q in:\n%s", tt.want, msg)
			}
			if out != "" {
				t.Errorf("nothing should be written to stdout, got:\n%s", out)
			}
		})
	}
}

func readFile(p string) (string, error) {
	raw, err := os.ReadFile(p)
	return string(raw), err
}
