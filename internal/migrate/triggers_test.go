package migrate

import (
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
)

// workloadWithEnv is a Deployment whose one container has the given
// literal environment variables and one taken from a Secret, SECRET_VAR.
func workloadWithEnv(env map[string]string) *appsv1.Deployment {
	c := corev1.Container{Name: "app", Env: []corev1.EnvVar{{Name: "SECRET_VAR", ValueFrom: &corev1.EnvVarSource{}}}}
	for k, v := range env {
		c.Env = append(c.Env, corev1.EnvVar{Name: k, Value: v})
	}
	d := &appsv1.Deployment{}
	d.Spec.Template.Spec.Containers = []corev1.Container{c}
	return d
}

// testParams is a triggerParams over the given parameters.
func testParams(deploy *appsv1.Deployment, params map[string]param) *triggerParams {
	tp := &triggerParams{params: params, used: map[string]bool{}, deploy: deploy, rep: &Report{}}
	return tp
}

func TestTriggerParamsLiteral(t *testing.T) {
	deploy := workloadWithEnv(map[string]string{"GROUP": "billing"})
	tests := []struct {
		name          string
		param         *param
		wantV         string
		wantOK        bool
		wantEssential bool
	}{
		{name: "absent"},
		{name: "literal", param: &param{value: "billing", from: "m"}, wantV: "billing", wantOK: true},
		{name: "from a Secret is not read", param: &param{secret: &AuthTargetRef{Name: "s", Key: "k"}, from: "m"}},
		{name: "from the workload's environment", param: &param{env: "GROUP", from: "m"}, wantV: "billing", wantOK: true},
		{name: "from an environment variable without a literal value", param: &param{env: "SECRET_VAR", from: "m"}, wantEssential: true},
		{name: "from a missing environment variable", param: &param{env: "NOPE", from: "m"}, wantEssential: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			params := map[string]param{}
			if tt.param != nil {
				params["consumerGroup"] = *tt.param
			}
			tp := testParams(deploy, params)
			v, _, ok := tp.literal("consumerGroup")
			if v != tt.wantV || ok != tt.wantOK || tp.rep.Failed() != tt.wantEssential {
				t.Errorf("literal = %q, %t, essential %t; want %q, %t, essential %t", v, ok, tp.rep.Failed(), tt.wantV, tt.wantOK, tt.wantEssential)
			}
			if !tp.used["consumerGroup"] {
				t.Error("the parameter is not marked used")
			}
		})
	}
}

func TestTriggerParamsFromEnv(t *testing.T) {
	tests := []struct {
		name          string
		deploy        *appsv1.Deployment
		params        map[string]param
		wantV         string
		wantOK        bool
		wantOutcome   Outcome
		wantEssential bool
	}{
		{name: "neither"},
		{name: "the literal wins", deploy: workloadWithEnv(map[string]string{"T": "env"}),
			params: map[string]param{"topic": {value: "lit", from: "m.topic"}, "topicFromEnv": {value: "T", from: "m.topicFromEnv"}}, wantV: "lit", wantOK: true},
		{name: "read from the workload", deploy: workloadWithEnv(map[string]string{"T": "orders"}),
			params: map[string]param{"topicFromEnv": {value: "T", from: "m.topicFromEnv"}}, wantV: "orders", wantOK: true, wantOutcome: Approximated},
		{name: "no workload in the input",
			params: map[string]param{"topicFromEnv": {value: "T", from: "m.topicFromEnv"}}, wantEssential: true},
		{name: "no such variable", deploy: workloadWithEnv(nil),
			params: map[string]param{"topicFromEnv": {value: "T", from: "m.topicFromEnv"}}, wantEssential: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tp := testParams(tt.deploy, tt.params)
			v, _, ok := tp.fromEnv("topic")
			if v != tt.wantV || ok != tt.wantOK || tp.rep.Failed() != tt.wantEssential {
				t.Errorf("fromEnv = %q, %t, essential %t; want %q, %t, essential %t", v, ok, tp.rep.Failed(), tt.wantV, tt.wantOK, tt.wantEssential)
			}
			if tt.wantOutcome != "" && (len(tp.rep.Lines) != 1 || tp.rep.Lines[0].Outcome != tt.wantOutcome) {
				t.Errorf("report %+v, want one %s line", tp.rep.Lines, tt.wantOutcome)
			}
		})
	}
}

func TestTriggerParamsMode(t *testing.T) {
	secret := &AuthTargetRef{Name: "auth", Key: "sasl"}
	tests := []struct {
		name          string
		param         *param
		override      string
		wantV         string
		wantKnown     bool
		wantEssential bool
	}{
		{name: "absent", wantKnown: true},
		{name: "literal", param: &param{value: "plaintext", from: "m"}, wantV: "plaintext", wantKnown: true},
		{name: "literal, flag ignored", param: &param{value: "plaintext", from: "m"}, override: "scram_sha512", wantV: "plaintext", wantKnown: true},
		{name: "in a Secret without the flag", param: &param{secret: secret, from: "m"}, wantEssential: true},
		{name: "in a Secret with the flag", param: &param{secret: secret, from: "m"}, override: "scram_sha512", wantV: "scram_sha512", wantKnown: true},
		{name: "in a ConfigMap with the flag", param: &param{configMap: secret, from: "m"}, override: "none", wantV: "none", wantKnown: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			params := map[string]param{}
			if tt.param != nil {
				params["sasl"] = *tt.param
			}
			tp := testParams(nil, params)
			v, _, known := tp.mode("sasl", "--sasl", tt.override)
			if v != tt.wantV || known != tt.wantKnown || tp.rep.Failed() != tt.wantEssential {
				t.Errorf("mode = %q, %t, essential %t; want %q, %t, essential %t", v, known, tp.rep.Failed(), tt.wantV, tt.wantKnown, tt.wantEssential)
			}
		})
	}
}

func TestTriggerParamsBoolean(t *testing.T) {
	tests := []struct {
		value         string
		want, wantOK  bool
		wantEssential bool
	}{
		{value: "true", want: true, wantOK: true},
		{value: " false ", wantOK: true},
		{value: "yes", wantEssential: true},
	}
	for _, tt := range tests {
		t.Run(tt.value, func(t *testing.T) {
			tp := testParams(nil, map[string]param{"allowIdleConsumers": {value: tt.value, from: "m"}})
			b, _, ok := tp.boolean("allowIdleConsumers")
			if b != tt.want || ok != tt.wantOK || tp.rep.Failed() != tt.wantEssential {
				t.Errorf("boolean(%q) = %t, %t, essential %t", tt.value, b, ok, tp.rep.Failed())
			}
		})
	}
}

func TestReportUnused(t *testing.T) {
	tp := testParams(nil, map[string]param{"topic": {value: "t", from: "m.topic"}, "zeta": {value: "1", from: "m.zeta"}, "alpha": {value: "1", from: "m.alpha"}})
	tp.get("topic")
	tp.reportUnused()
	var got []string
	for _, l := range tp.rep.Lines {
		if l.Outcome != Unsupported {
			t.Errorf("line %+v, want unsupported", l)
		}
		got = append(got, l.Field)
	}
	if len(got) != 2 || got[0] != "m.alpha" || got[1] != "m.zeta" {
		t.Errorf("unused lines for %q, want m.alpha then m.zeta", got)
	}
}
