package migrate

import (
	"strings"

	"github.com/lagscale/lagscale/api/v1alpha1"
)

// mapSASL maps the trigger's sasl and its credentials, taking the Secret
// by reference only. override is --sasl, for a sasl kept in a Secret.
func mapSASL(ec *v1alpha1.EventConsumer, tp *triggerParams, override string) {
	sasl, from, known := tp.mode("sasl", "--sasl", override)
	mapTokenProvider(tp)
	mech := saslMechanism(sasl, from, known, tp)
	for _, k := range []string{"scopes", "oauthTokenEndpointUri", "oauthExtensions", "keytab", "realm", "kerberosConfig", "kerberosServiceName", "kerberosDisableFAST"} {
		if p, ok := tp.get(k); ok {
			tp.rep.add(p.from, Unsupported, "belongs to OAuth or GSSAPI, which lagscale does not support")
		}
	}
	switch {
	case mech != "":
		mapSASLCredentials(mech, from, ec, tp)
	case known:
		for _, k := range []string{"username", "password"} {
			if p, ok := tp.get(k); ok {
				tp.rep.add(p.from, Unsupported, "%s without SASL is not used", k)
			}
		}
	}
}

// mapTokenProvider reports the token providers and AWS parameters, none of
// which lagscale supports.
func mapTokenProvider(tp *triggerParams) {
	if p, ok := tp.get("saslTokenProvider"); ok {
		v, _, _ := tp.literal("saslTokenProvider")
		switch v {
		case "aws_msk_iam":
			tp.rep.essential(p.from, "MSK IAM authentication is not supported by lagscale")
		case "bearer", "":
		default:
			tp.rep.essential(p.from, "token provider %q is not supported", v)
		}
	}
	for _, k := range []string{"awsRegion", "awsEndpoint", "awsRoleArn", "awsAccessKeyID", "awsSecretAccessKey"} {
		if p, ok := tp.get(k); ok {
			tp.rep.add(p.from, Unsupported, "AWS authentication is not supported by lagscale")
		}
	}
}

// saslMechanism maps KEDA's sasl value to a mechanism, empty for none or
// for one lagscale does not support (reported as essential).
func saslMechanism(sasl, from string, known bool, tp *triggerParams) v1alpha1.SASLMechanism {
	switch strings.ToLower(sasl) {
	case "", "none":
		if !known {
			tp.markUsed("username", "password")
			return ""
		}
		if from != "" {
			tp.rep.add(from, Mapped, "no SASL")
		}
	case "plaintext":
		return v1alpha1.SASLPlain
	case "scram_sha256":
		return v1alpha1.SASLScramSHA256
	case "scram_sha512":
		return v1alpha1.SASLScramSHA512
	case "oauthbearer":
		tp.rep.essential(from, "OAuth (SASL/OAUTHBEARER) is not supported by lagscale")
	case "gssapi":
		tp.rep.essential(from, "GSSAPI (Kerberos) is not supported by lagscale")
	case "aws_msk_iam":
		tp.rep.essential(from, "MSK IAM authentication is not supported by lagscale")
	default:
		tp.rep.essential(from, "unknown sasl %q", sasl)
	}
	return ""
}

// mapSASLCredentials points spec.kafka.sasl at the Secret holding username
// and password, which lagscale reads under those two keys.
func mapSASLCredentials(mech v1alpha1.SASLMechanism, saslFrom string, ec *v1alpha1.EventConsumer, tp *triggerParams) {
	rep := tp.rep
	user, uok := tp.get("username")
	pass, pok := tp.get("password")
	switch {
	case !uok || !pok:
		rep.essential(saslFrom, "SASL %s needs username and password from the TriggerAuthentication", mech)
	case user.secret == nil || pass.secret == nil:
		rep.essential(user.from, "username and password must come from a Secret (secretTargetRef): lagscale takes credentials by reference only")
	case user.secret.Name != pass.secret.Name || user.secret.Key != "username" || pass.secret.Key != "password":
		rep.essential(user.from, "lagscale reads the keys username and password of one Secret, but username is %s/%s and password is %s/%s: make a Secret with keys username and password and point secretTargetRef at it",
			user.secret.Name, user.secret.Key, pass.secret.Name, pass.secret.Key)
	default:
		ec.Spec.Kafka.SASL = &v1alpha1.SASLConfig{Mechanism: mech, SecretRef: v1alpha1.LocalObjectRef{Name: user.secret.Name}}
		rep.add(saslFrom, Mapped, "spec.kafka.sasl.mechanism %s", mech)
		rep.add(user.from, Mapped, "spec.kafka.sasl.secretRef %s (keys username and password, by reference)", user.secret.Name)
		rep.add(pass.from, Mapped, "spec.kafka.sasl.secretRef %s", pass.secret.Name)
	}
}
