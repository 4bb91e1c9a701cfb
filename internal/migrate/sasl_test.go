package migrate

import (
	"bytes"
	"strings"
	"testing"

	"github.com/lagscale/lagscale/api/v1alpha1"
)

func TestConvertSASLAndTLSFromSecret(t *testing.T) {
	// sasl and tls are in the Secret: without the flags migrate cannot know
	// them and must not guess.
	res := convertFile(t, "sasl-tls.yaml", Options{})
	if !res.Failed() || len(res.Consumers) != 0 {
		t.Fatalf("want a failed migration without --sasl/--tls, got failed=%t consumers=%d", res.Failed(), len(res.Consumers))
	}
	l := line(t, res.Reports[0], "TriggerAuthentication ledger-kafka-auth spec.secretTargetRef[0] (sasl)")
	if !l.Essential || !strings.Contains(l.Detail, "--sasl") {
		t.Errorf("sasl line = %+v", l)
	}

	res = convertFile(t, "sasl-tls.yaml", Options{SASL: "scram_sha512", TLS: "enable"})
	if res.Failed() {
		t.Fatalf("failed with --sasl and --tls: %+v", res.Reports[0].Lines)
	}
	k := consumer(t, res, "ledger-sync").Spec.Kafka
	if k.SASL == nil || k.SASL.Mechanism != v1alpha1.SASLScramSHA512 || k.SASL.SecretRef.Name != "ledger-kafka" {
		t.Errorf("sasl = %+v", k.SASL)
	}
	if k.TLS == nil || *k.TLS.CASecretRef != (v1alpha1.SecretKeyRef{Name: "ledger-kafka", Key: "ca"}) ||
		*k.TLS.CertSecretRef != (v1alpha1.SecretKeyRef{Name: "ledger-kafka", Key: "cert"}) ||
		*k.TLS.KeySecretRef != (v1alpha1.SecretKeyRef{Name: "ledger-kafka", Key: "key"}) || k.TLS.InsecureSkipVerify {
		t.Errorf("tls = %+v", k.TLS)
	}
	// By reference only: no value of the Secret in the file reaches the
	// output.
	var out bytes.Buffer
	if err := WriteYAML(&out, res); err != nil {
		t.Fatal(err)
	}
	for _, secret := range []string{"not-a-real-password", "ledger-consumer", "BEGIN"} {
		if strings.Contains(out.String(), secret) {
			t.Errorf("the output holds the Secret's value %q:\n%s", secret, out.String())
		}
	}
}

func TestMapSASL(t *testing.T) {
	user := param{secret: &AuthTargetRef{Name: "kafka-user", Key: "username"}, from: "username"}
	pass := param{secret: &AuthTargetRef{Name: "kafka-user", Key: "password"}, from: "password"}
	tests := []struct {
		name          string
		params        map[string]param
		override      string
		wantMech      v1alpha1.SASLMechanism
		wantEssential bool
	}{
		{name: "no sasl"},
		{name: "none", params: map[string]param{"sasl": {value: "none", from: "sasl"}, "username": user}},
		{name: "plaintext", params: map[string]param{"sasl": {value: "plaintext", from: "sasl"}, "username": user, "password": pass}, wantMech: v1alpha1.SASLPlain},
		{name: "scram_sha256 in upper case", params: map[string]param{"sasl": {value: "SCRAM_SHA256", from: "sasl"}, "username": user, "password": pass}, wantMech: v1alpha1.SASLScramSHA256},
		{name: "scram_sha512 from --sasl", params: map[string]param{"sasl": {secret: &AuthTargetRef{Name: "a", Key: "sasl"}, from: "sasl"}, "username": user, "password": pass},
			override: "scram_sha512", wantMech: v1alpha1.SASLScramSHA512},
		{name: "in a Secret without --sasl", params: map[string]param{"sasl": {secret: &AuthTargetRef{Name: "a", Key: "sasl"}, from: "sasl"}, "username": user, "password": pass}, wantEssential: true},
		{name: "no password", params: map[string]param{"sasl": {value: "plaintext", from: "sasl"}, "username": user}, wantEssential: true},
		{name: "literal credentials", params: map[string]param{"sasl": {value: "plaintext", from: "sasl"}, "username": {value: "u", from: "username"}, "password": pass}, wantEssential: true},
		{name: "keys of two Secrets", params: map[string]param{"sasl": {value: "plaintext", from: "sasl"}, "username": user,
			"password": {secret: &AuthTargetRef{Name: "other", Key: "password"}, from: "password"}}, wantEssential: true},
		{name: "oauthbearer", params: map[string]param{"sasl": {value: "oauthbearer", from: "sasl"}}, wantEssential: true},
		{name: "gssapi", params: map[string]param{"sasl": {value: "gssapi", from: "sasl"}}, wantEssential: true},
		{name: "MSK IAM token provider", params: map[string]param{"saslTokenProvider": {value: "aws_msk_iam", from: "p"}}, wantEssential: true},
		{name: "unknown", params: map[string]param{"sasl": {value: "digest", from: "sasl"}}, wantEssential: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tp := testParams(nil, tt.params)
			ec := &v1alpha1.EventConsumer{}
			mapSASL(ec, tp, tt.override)
			var mech v1alpha1.SASLMechanism
			if s := ec.Spec.Kafka.SASL; s != nil {
				mech = s.Mechanism
				if s.SecretRef.Name != "kafka-user" {
					t.Errorf("secretRef %q, want kafka-user", s.SecretRef.Name)
				}
			}
			if mech != tt.wantMech || tp.rep.Failed() != tt.wantEssential {
				t.Errorf("mechanism %q, essential %t; want %q, %t: %+v", mech, tp.rep.Failed(), tt.wantMech, tt.wantEssential, tp.rep.Lines)
			}
		})
	}
}
