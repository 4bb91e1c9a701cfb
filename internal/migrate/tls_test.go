package migrate

import (
	"testing"

	"github.com/lagscale/lagscale/api/v1alpha1"
)

func TestMapTLS(t *testing.T) {
	ref := func(key string) param {
		return param{secret: &AuthTargetRef{Name: "kafka-tls", Key: key}, from: key}
	}
	tests := []struct {
		name          string
		params        map[string]param
		override      string
		wantTLS       *v1alpha1.TLSConfig
		wantEssential bool
	}{
		{name: "no tls", params: map[string]param{"ca": ref("ca")}},
		{name: "tls disable", params: map[string]param{"tls": {value: "disable", from: "tls"}}},
		{name: "tls enable, system roots", params: map[string]param{"tls": {value: "enable", from: "tls"}}, wantTLS: &v1alpha1.TLSConfig{}},
		{name: "tls enable with CA and client key",
			params:  map[string]param{"tls": {value: "enable", from: "tls"}, "ca": ref("ca"), "cert": ref("cert"), "key": ref("key"), "unsafeSsl": {value: "true", from: "unsafeSsl"}},
			wantTLS: &v1alpha1.TLSConfig{CASecretRef: &v1alpha1.SecretKeyRef{Name: "kafka-tls", Key: "ca"}, CertSecretRef: &v1alpha1.SecretKeyRef{Name: "kafka-tls", Key: "cert"}, KeySecretRef: &v1alpha1.SecretKeyRef{Name: "kafka-tls", Key: "key"}, InsecureSkipVerify: true}},
		{name: "cert without key", params: map[string]param{"tls": {value: "enable", from: "tls"}, "cert": ref("cert")},
			wantTLS: &v1alpha1.TLSConfig{CertSecretRef: &v1alpha1.SecretKeyRef{Name: "kafka-tls", Key: "cert"}}, wantEssential: true},
		{name: "a literal CA", params: map[string]param{"tls": {value: "enable", from: "tls"}, "ca": {value: "-----BEGIN", from: "ca"}},
			wantTLS: &v1alpha1.TLSConfig{}, wantEssential: true},
		{name: "an encrypted key", params: map[string]param{"tls": {value: "enable", from: "tls"}, "keyPassword": ref("keyPassword")},
			wantTLS: &v1alpha1.TLSConfig{}, wantEssential: true},
		{name: "tls in a Secret without --tls", params: map[string]param{"tls": ref("tls")}, wantEssential: true},
		{name: "tls in a Secret with --tls", params: map[string]param{"tls": ref("tls")}, override: "enable", wantTLS: &v1alpha1.TLSConfig{}},
		{name: "neither enable nor disable", params: map[string]param{"tls": {value: "yes", from: "tls"}}, wantEssential: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tp := testParams(nil, tt.params)
			ec := &v1alpha1.EventConsumer{}
			mapTLS("spec.triggers[0]", ec, tp, tt.override)
			if got := ec.Spec.Kafka.TLS; (got == nil) != (tt.wantTLS == nil) || (got != nil && !equalTLS(*got, *tt.wantTLS)) {
				t.Errorf("tls = %+v, want %+v", got, tt.wantTLS)
			}
			if tp.rep.Failed() != tt.wantEssential {
				t.Errorf("essential = %t, want %t: %+v", tp.rep.Failed(), tt.wantEssential, tp.rep.Lines)
			}
			for k := range tt.params {
				if !tp.used[k] {
					t.Errorf("parameter %s is not marked used, so it would be reported twice", k)
				}
			}
		})
	}
}

func equalTLS(a, b v1alpha1.TLSConfig) bool {
	eq := func(x, y *v1alpha1.SecretKeyRef) bool { return (x == nil) == (y == nil) && (x == nil || *x == *y) }
	return eq(a.CASecretRef, b.CASecretRef) && eq(a.CertSecretRef, b.CertSecretRef) && eq(a.KeySecretRef, b.KeySecretRef) && a.InsecureSkipVerify == b.InsecureSkipVerify
}
