package migrate

import (
	"fmt"
)

// resolveAuth adds the parameters of the trigger's TriggerAuthentication
// (or ClusterTriggerAuthentication). KEDA's metadata wins for parameters
// allowed in both places, as in KEDA.
func resolveAuth(so *ScaledObject, trig *Trigger, f string, in *Input, params map[string]param, rep *Report) {
	if trig.AuthenticationRef == nil {
		return
	}
	kind := trig.AuthenticationRef.Kind
	if kind == "" {
		kind = "TriggerAuthentication"
	}
	field := f + ".authenticationRef"
	if kind != "TriggerAuthentication" && kind != "ClusterTriggerAuthentication" {
		rep.essential(field, "unknown kind %q: want TriggerAuthentication or ClusterTriggerAuthentication", kind)
		return
	}
	ta, ok := in.Auths[authKey(kind, so.Namespace, trig.AuthenticationRef.Name)]
	if !ok {
		where := so.Namespace + "/" + trig.AuthenticationRef.Name
		if kind == "ClusterTriggerAuthentication" {
			where = trig.AuthenticationRef.Name
		}
		rep.essential(field, "%s %s is not in the input: add its manifest with -f, or use --from-cluster", kind, where)
		return
	}
	af := kind + " " + ta.Name
	for _, k := range sortedKeys(ta.raw) {
		switch k {
		case "secretTargetRef", "configMapTargetRef", "env":
		case "podIdentity":
			if ta.Spec.PodIdentity != nil && ta.Spec.PodIdentity.Provider != "" && ta.Spec.PodIdentity.Provider != "none" {
				rep.essential(af+" spec.podIdentity", "pod identity %q (MSK IAM and cloud identities) is not supported by lagscale", ta.Spec.PodIdentity.Provider)
			}
		default:
			rep.essential(af+" spec."+k, "lagscale reads credentials from Kubernetes Secrets only, not from %s", k)
		}
	}
	add := func(p string, v param) {
		if _, inMetadata := params[p]; inMetadata {
			return
		}
		params[p] = v
	}
	for i, r := range ta.Spec.SecretTargetRef {
		r := r
		add(r.Parameter, param{secret: &r, from: fmt.Sprintf("%s spec.secretTargetRef[%d] (%s)", af, i, r.Parameter)})
	}
	for i, r := range ta.Spec.ConfigMapTargetRef {
		r := r
		add(r.Parameter, param{configMap: &r, from: fmt.Sprintf("%s spec.configMapTargetRef[%d] (%s)", af, i, r.Parameter)})
	}
	for i, e := range ta.Spec.Env {
		add(e.Parameter, param{env: e.Name, from: fmt.Sprintf("%s spec.env[%d] (%s)", af, i, e.Parameter)})
	}
}
