package migrate

import (
	"github.com/lagscale/lagscale/api/v1alpha1"
)

// tlsParams are KEDA's TLS parameters besides tls itself.
var tlsParams = []string{"ca", "cert", "key", "keyPassword", "unsafeSsl"}

// mapTLS maps the trigger's tls and its key material, taking Secrets by
// reference only. override is --tls, for a tls kept in a Secret.
func mapTLS(f string, ec *v1alpha1.EventConsumer, tp *triggerParams, override string) {
	rep := tp.rep
	tls, tlsFrom, known := tp.mode("tls", "--tls", override)
	if !known {
		tp.markUsed(tlsParams...)
		return
	}
	switch tls {
	case "", "disable":
		if tlsFrom != "" {
			rep.add(tlsFrom, Mapped, "no TLS")
		}
		for _, k := range tlsParams {
			if p, ok := tp.get(k); ok {
				rep.add(p.from, Unsupported, "%s without tls enable is not used, as in KEDA", k)
			}
		}
		return
	case "enable":
	default:
		rep.essential(tlsFrom, "tls %q is neither enable nor disable", tls)
		return
	}
	t := &v1alpha1.TLSConfig{}
	rep.add(tlsFrom, Mapped, "spec.kafka.tls")
	t.CASecretRef, t.CertSecretRef, t.KeySecretRef = tlsSecretRef("ca", tp), tlsSecretRef("cert", tp), tlsSecretRef("key", tp)
	if (t.CertSecretRef == nil) != (t.KeySecretRef == nil) {
		rep.essential(f, "cert and key must be given together for client authentication")
	}
	if p, ok := tp.get("keyPassword"); ok {
		rep.essential(p.from, "an encrypted client key (keyPassword) is not supported: give lagscale an unencrypted key in a Secret")
	}
	if b, from, ok := tp.boolean("unsafeSsl"); ok {
		t.InsecureSkipVerify = b
		rep.add(from, Mapped, "spec.kafka.tls.insecureSkipVerify %t", b)
	}
	ec.Spec.Kafka.TLS = t
}

// tlsSecretRef maps ca, cert or key, which must come from a Secret.
func tlsSecretRef(name string, tp *triggerParams) *v1alpha1.SecretKeyRef {
	p, ok := tp.get(name)
	if !ok {
		return nil
	}
	if p.secret == nil {
		tp.rep.essential(p.from, "%s must come from a Secret (secretTargetRef): lagscale takes key material by reference only", name)
		return nil
	}
	tp.rep.add(p.from, Mapped, "spec.kafka.tls.%sSecretRef %s key %s, mounted into the handler pods", name, p.secret.Name, p.secret.Key)
	return &v1alpha1.SecretKeyRef{Name: p.secret.Name, Key: p.secret.Key}
}
