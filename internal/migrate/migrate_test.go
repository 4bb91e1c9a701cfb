package migrate

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lagscale/lagscale/api/v1alpha1"
)

func convertFile(t *testing.T, file string, o Options) *Result {
	t.Helper()
	f, err := os.Open(filepath.Join("testdata", file))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	in := &Input{}
	if err := Decode(f, in); err != nil {
		t.Fatal(err)
	}
	res, err := Convert(in, o)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func convertString(t *testing.T, doc string, o Options) (*Result, error) {
	t.Helper()
	in := &Input{}
	if err := Decode(strings.NewReader(doc), in); err != nil {
		return nil, err
	}
	return Convert(in, o)
}

// line finds the report line of a field, failing when there is none.
func line(t *testing.T, r *Report, field string) Line {
	t.Helper()
	for _, l := range r.Lines {
		if l.Field == field {
			return l
		}
	}
	var fields []string
	for _, l := range r.Lines {
		fields = append(fields, l.Field)
	}
	t.Fatalf("no report line for %q; lines: %q", field, fields)
	return Line{}
}

func consumer(t *testing.T, res *Result, name string) *v1alpha1.EventConsumer {
	t.Helper()
	for _, ec := range res.Consumers {
		if ec.Name == name {
			return ec
		}
	}
	t.Fatalf("no EventConsumer %s in the result", name)
	return nil
}

func TestConvertPlain(t *testing.T) {
	res := convertFile(t, "plain.yaml", Options{Own: true})
	if res.Failed() || len(res.Consumers) != 1 || len(res.Clusters) != 0 {
		t.Fatalf("failed=%t consumers=%d clusters=%d", res.Failed(), len(res.Consumers), len(res.Clusters))
	}
	ec := consumer(t, res, "invoice-worker")
	s := ec.Spec.Scaling
	r := res.Reports[0]
	tests := []struct {
		name    string
		ok      bool
		field   string
		outcome Outcome
	}{
		{"policy and lagThreshold", s.Policy == v1alpha1.PolicyLagThreshold && *s.LagThreshold == 50, "spec.triggers[0].metadata.lagThreshold", Mapped},
		{"activationLag", *s.ActivationLag == 5, "spec.triggers[0].metadata.activationLagThreshold", Mapped},
		{"min and max", *s.MinReplicas == 0 && *s.MaxReplicas == 12, "spec.maxReplicaCount", Mapped},
		{"poll interval", *s.PollIntervalSeconds == 15, "spec.pollingInterval", Mapped},
		// min 0: KEDA waits 120s from N to 1 and 600s from 1 to 0; the
		// longer one is kept and the line says so.
		{"cooldown and behaviour", *s.ScaleDownStabilizationSeconds == 600, "spec.cooldownPeriod", Approximated},
		{"offsetResetPolicy", s.OffsetResetPolicy == v1alpha1.OffsetResetEarliest, "spec.triggers[0].metadata.offsetResetPolicy", Mapped},
		{"allowIdleConsumers written unquoted", !s.AllowIdleConsumers, "spec.triggers[0].metadata.allowIdleConsumers", Mapped},
		{"topic", len(ec.Spec.Topics) == 1 && ec.Spec.Topics[0] == "invoices.created", "spec.triggers[0].metadata.topic", Mapped},
		{"group", ec.Spec.ConsumerGroup == "invoices", "spec.triggers[0].metadata.consumerGroup", Mapped},
		{"brokers", len(ec.Spec.Kafka.BootstrapServers) == 2 && ec.Spec.Kafka.SASL == nil && ec.Spec.Kafka.TLS == nil, "spec.triggers[0].metadata.bootstrapServers", Mapped},
		{"excludePersistentLag", true, "spec.triggers[0].metadata.excludePersistentLag", Unsupported},
		{"partitionLimitation", true, "spec.triggers[0].metadata.partitionLimitation", Unsupported},
		{"template", ec.Spec.Template != nil && ec.Spec.Template.Spec.Containers[0].Image == "registry.example.com/invoice-worker:1.4.2", "spec.scaleTargetRef", Mapped},
		{"contract env dropped, own env kept", len(ec.Spec.Template.Spec.Containers[0].Env) == 1 && ec.Spec.Template.Spec.Containers[0].Env[0].Name == "LOG_LEVEL",
			"Deployment invoice-worker container worker env KAFKA_BOOTSTRAP_SERVERS", Approximated},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if !tt.ok {
				t.Errorf("EventConsumer spec wrong: %+v", s)
			}
			if l := line(t, r, tt.field); l.Outcome != tt.outcome || l.Essential {
				t.Errorf("%s: %s (essential %t), want %s: %s", tt.field, l.Outcome, l.Essential, tt.outcome, l.Detail)
			}
		})
	}
	if d := line(t, r, "spec.cooldownPeriod").Detail; !strings.Contains(d, "120s") || !strings.Contains(d, "600s") {
		t.Errorf("cooldown explanation lacks both windows: %s", d)
	}
}

// TestBadInput covers inputs that must fail, with the message a person
// needs to fix them.
func TestBadInput(t *testing.T) {
	const deploy = `
apiVersion: apps/v1
kind: Deployment
metadata: {name: w, namespace: ns}
spec:
  selector: {matchLabels: {app: w}}
  template:
    metadata: {labels: {app: w}}
    spec: {containers: [{name: w, image: w:1}]}
---
`
	so := func(trigger string) string {
		return deploy + `
apiVersion: keda.sh/v1alpha1
kind: ScaledObject
metadata: {name: w, namespace: ns}
spec:
  scaleTargetRef: {name: w}
  triggers:
` + trigger
	}
	const kafka = `
    - type: kafka
      metadata: {bootstrapServers: "k:9092", consumerGroup: g, topic: t`
	tests := []struct {
		name  string
		doc   string
		opts  Options
		err   string // an error from Decode or Convert
		field string // else: the essential report line
		want  string
	}{
		{name: "not YAML", doc: "apiVersion: [unclosed\n", err: "document 1 is not YAML"},
		{name: "no kind", doc: "metadata: {name: x}\n", err: "no kind or apiVersion"},
		{name: "no ScaledObject", doc: deploy, err: "no KEDA ScaledObject"},
		{name: "no Kafka trigger", doc: so("    - {type: cpu, metadata: {value: \"50\"}}\n"), field: "spec.triggers", want: "no kafka or apache-kafka trigger"},
		{name: "unknown auth reference", doc: so(kafka + "}\n      authenticationRef: {name: missing}\n"), field: "spec.triggers[0].authenticationRef", want: "TriggerAuthentication ns/missing is not in the input"},
		{name: "unknown cluster auth reference", doc: so(kafka + "}\n      authenticationRef: {name: gone, kind: ClusterTriggerAuthentication}\n"), field: "spec.triggers[0].authenticationRef", want: "ClusterTriggerAuthentication gone is not in the input"},
		{name: "no topic", doc: so("    - {type: kafka, metadata: {bootstrapServers: \"k:9092\", consumerGroup: g}}\n"), field: "spec.triggers[0].metadata.topic", want: "add topic"},
		{name: "OAuth", doc: so(kafka + ", sasl: oauthbearer}\n"), field: "spec.triggers[0].metadata.sasl", want: "OAuth"},
		{name: "GSSAPI", doc: so(kafka + ", sasl: gssapi}\n"), field: "spec.triggers[0].metadata.sasl", want: "GSSAPI"},
		{name: "MSK IAM", doc: so("    - {type: apache-kafka, metadata: {bootstrapServers: \"k:9092\", consumerGroup: g, topic: t, sasl: aws_msk_iam}}\n"), field: "spec.triggers[0].metadata.sasl", want: "MSK IAM"},
		{name: "MSK IAM token provider", doc: so(kafka + ", sasl: oauthbearer, saslTokenProvider: aws_msk_iam}\n"), field: "spec.triggers[0].metadata.saslTokenProvider", want: "MSK IAM"},
		{name: "bad lagThreshold", doc: so(kafka + ", lagThreshold: lots}\n"), field: "spec.triggers[0].metadata.lagThreshold", want: "not a positive integer"},
		{name: "two Kafka triggers", doc: so(kafka + "}\n" + kafka + "}\n"), field: "spec.triggers[1]", want: "one consumer group"},
		{name: "StatefulSet target", doc: strings.Replace(so(kafka+"}\n"), "scaleTargetRef: {name: w}", "scaleTargetRef: {name: w, kind: StatefulSet}", 1), opts: Options{Own: true}, field: "spec.scaleTargetRef", want: "only a Deployment"},
		{name: "Deployment missing", doc: strings.Replace(so(kafka+"}\n"), "scaleTargetRef: {name: w}", "scaleTargetRef: {name: other}", 1), opts: Options{Own: true}, field: "spec.scaleTargetRef", want: "--from-cluster"},
		{name: "scaling modifiers", doc: strings.Replace(so(kafka+"}\n"), "  triggers:", "  advanced: {scalingModifiers: {formula: \"a + b\"}}\n  triggers:", 1), field: "spec.advanced.scalingModifiers", want: "formulas"},
		{name: "credentials under other keys", doc: `
apiVersion: keda.sh/v1alpha1
kind: TriggerAuthentication
metadata: {name: a, namespace: ns}
spec:
  secretTargetRef:
    - {parameter: username, name: s, key: user}
    - {parameter: password, name: s, key: pass}
---
` + so(kafka+", sasl: plaintext}\n      authenticationRef: {name: a}\n"), field: "TriggerAuthentication a spec.secretTargetRef[0] (username)", want: "keys username and password of one Secret"},
		{name: "vault", doc: `
apiVersion: keda.sh/v1alpha1
kind: TriggerAuthentication
metadata: {name: a, namespace: ns}
spec:
  hashiCorpVault: {address: "https://vault:8200"}
---
` + so(kafka+"}\n      authenticationRef: {name: a}\n"), field: "TriggerAuthentication a spec.hashiCorpVault", want: "Kubernetes Secrets only"},
		{name: "encrypted key", doc: `
apiVersion: keda.sh/v1alpha1
kind: TriggerAuthentication
metadata: {name: a, namespace: ns}
spec:
  secretTargetRef:
    - {parameter: cert, name: s, key: cert}
    - {parameter: key, name: s, key: key}
    - {parameter: keyPassword, name: s, key: pw}
---
` + so(kafka+", tls: enable}\n      authenticationRef: {name: a}\n"), field: "TriggerAuthentication a spec.secretTargetRef[2] (keyPassword)", want: "encrypted"},
		{name: "bad --sasl", doc: so(kafka + "}\n"), opts: Options{SASL: "kerberos"}, err: `--sasl "kerberos"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, err := convertString(t, tt.doc, tt.opts)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("error %v, want one containing %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !res.Failed() || len(res.Consumers) != 0 {
				t.Fatalf("want a failed migration and no EventConsumer, got failed=%t consumers=%d", res.Failed(), len(res.Consumers))
			}
			l := line(t, res.Reports[0], tt.field)
			if !l.Essential || l.Outcome != Unsupported || !strings.Contains(l.Detail, tt.want) {
				t.Errorf("line = %+v, want essential and containing %q", l, tt.want)
			}
		})
	}
}

// TestNonEssentialFields are dropped or approximated with a reason, and
// do not stop the migration.
func TestNonEssentialFields(t *testing.T) {
	doc := `
apiVersion: apps/v1
kind: Deployment
metadata: {name: w, namespace: ns}
spec:
  selector: {matchLabels: {app: w}}
  template:
    metadata: {labels: {app: w}}
    spec:
      containers:
        - {name: sidecar, image: proxy:1}
        - name: w
          image: w:1
          env: [{name: BROKERS, value: "k-0:9092,k-1:9092"}]
---
apiVersion: keda.sh/v1alpha1
kind: ScaledObject
metadata:
  name: w
  namespace: ns
  annotations: {autoscaling.keda.sh/paused: "true"}
spec:
  scaleTargetRef: {name: w, envSourceContainerName: w}
  pollingInterval: 600
  minReplicaCount: 2
  cooldownPeriod: 60
  idleReplicaCount: 0
  fallback: {failureThreshold: 3, replicas: 6}
  advanced:
    restoreToOriginalReplicaCount: true
    horizontalPodAutoscalerConfig:
      behavior:
        scaleUp: {stabilizationWindowSeconds: 0}
        scaleDown: {policies: [{type: Pods, value: 1, periodSeconds: 60}]}
  triggers:
    - {type: cpu, metadata: {value: "80"}}
    - type: kafka
      metadata: {bootstrapServersFromEnv: BROKERS, consumerGroup: g, topic: t, scaleToZeroOnInvalidOffset: "true", ensureEvenDistributionOfPartitions: "true", limitToPartitionsWithLag: "true", madeUp: x}
      metricType: Value
`
	res, err := convertString(t, doc, Options{Own: true})
	if err != nil {
		t.Fatal(err)
	}
	if res.Failed() {
		t.Fatalf("failed: %+v", res.Reports[0].Lines)
	}
	ec := consumer(t, res, "w")
	if got := ec.Spec.Kafka.BootstrapServers; len(got) != 2 || got[0] != "k-0:9092" {
		t.Errorf("bootstrapServersFromEnv resolved to %q", got)
	}
	if c := ec.Spec.Template.Spec.Containers; c[0].Name != "w" {
		t.Errorf("envSourceContainerName's container is not first, where lagscale injects the contract: %s", c[0].Name)
	}
	s := ec.Spec.Scaling
	if !s.Paused || *s.PollIntervalSeconds != 300 || *s.ScaleDownStabilizationSeconds != 300 || *s.MinReplicas != 2 {
		t.Errorf("scaling = %+v", s)
	}
	r := res.Reports[0]
	tests := []struct {
		field string
		want  Outcome
	}{
		{"spec.triggers[0]", Unsupported},
		{"spec.triggers[1].metadata.bootstrapServersFromEnv", Approximated},
		{"spec.triggers[1].metadata.scaleToZeroOnInvalidOffset", Approximated},
		{"spec.triggers[1].metadata.ensureEvenDistributionOfPartitions", Approximated},
		{"spec.triggers[1].metadata.limitToPartitionsWithLag", Unsupported},
		{"spec.triggers[1].metadata.madeUp", Unsupported},
		{"spec.triggers[1].metricType", Approximated},
		{"spec.pollingInterval", Approximated},
		{"spec.cooldownPeriod", Mapped},
		{"spec.idleReplicaCount", Unsupported},
		{"spec.fallback", Approximated},
		{"spec.advanced.restoreToOriginalReplicaCount", Unsupported},
		{"spec.advanced.horizontalPodAutoscalerConfig.behavior.scaleUp", Approximated},
		{"spec.advanced.horizontalPodAutoscalerConfig.behavior.scaleDown.policies", Approximated},
		{"spec.scaleTargetRef.envSourceContainerName", Approximated},
		{"metadata.annotations[autoscaling.keda.sh/paused]", Mapped},
	}
	for _, tt := range tests {
		if l := line(t, r, tt.field); l.Outcome != tt.want || l.Essential || l.Detail == "" {
			t.Errorf("%s: %s (essential %t) %q, want %s with a reason", tt.field, l.Outcome, l.Essential, l.Detail, tt.want)
		}
	}
	if d := line(t, r, "spec.cooldownPeriod").Detail; !strings.Contains(d, "minReplicaCount 2 rules out") {
		t.Errorf("cooldown with minReplicaCount 2 should say it does not apply: %s", d)
	}
}
