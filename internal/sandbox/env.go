package sandbox

import (
	"context"
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"
)

// objectGetter reads the Secrets and ConfigMaps a container's environment
// refers to.
type objectGetter interface {
	Secret(ctx context.Context, namespace, name string) (*corev1.Secret, error)
	ConfigMap(ctx context.Context, namespace, name string) (*corev1.ConfigMap, error)
}

// ResolveEnv computes a container's environment as the kubelet does:
// envFrom first, then env in order (a later name overrides an earlier one),
// $(VAR) references expanded against the variables defined before, and
// valueFrom resolved from Secrets, ConfigMaps and the pod's fields. A
// missing required reference is an error (the kubelet's
// CreateContainerConfigError); a missing optional one is skipped.
func ResolveEnv(ctx context.Context, g objectGetter, pod *corev1.Pod, c *corev1.Container) ([]string, error) {
	var order []string
	vals := map[string]string{}
	set := func(k, v string) {
		if _, ok := vals[k]; !ok {
			order = append(order, k)
		}
		vals[k] = v
	}
	for _, from := range c.EnvFrom {
		switch {
		case from.SecretRef != nil:
			sec, err := g.Secret(ctx, pod.Namespace, from.SecretRef.Name)
			if err != nil {
				if isOptional(from.SecretRef.Optional) {
					continue
				}
				return nil, fmt.Errorf("envFrom secret %q: %w", from.SecretRef.Name, err)
			}
			for k, v := range sec.Data {
				set(from.Prefix+k, string(v))
			}
		case from.ConfigMapRef != nil:
			cm, err := g.ConfigMap(ctx, pod.Namespace, from.ConfigMapRef.Name)
			if err != nil {
				if isOptional(from.ConfigMapRef.Optional) {
					continue
				}
				return nil, fmt.Errorf("envFrom configmap %q: %w", from.ConfigMapRef.Name, err)
			}
			for k, v := range cm.Data {
				set(from.Prefix+k, v)
			}
		}
	}
	for _, e := range c.Env {
		if e.ValueFrom == nil {
			set(e.Name, expandVars(e.Value, vals))
			continue
		}
		v, ok, err := resolveValueFrom(ctx, g, pod, c, e)
		if err != nil {
			return nil, err
		}
		if ok {
			set(e.Name, v)
		}
	}
	out := make([]string, 0, len(order))
	for _, k := range order {
		out = append(out, k+"="+vals[k])
	}
	return out, nil
}

func resolveValueFrom(ctx context.Context, g objectGetter, pod *corev1.Pod, c *corev1.Container, e corev1.EnvVar) (string, bool, error) {
	vf := e.ValueFrom
	switch {
	case vf.SecretKeyRef != nil:
		ref := vf.SecretKeyRef
		sec, err := g.Secret(ctx, pod.Namespace, ref.Name)
		if err != nil {
			if isOptional(ref.Optional) {
				return "", false, nil
			}
			return "", false, fmt.Errorf("env %s: secret %q: %w", e.Name, ref.Name, err)
		}
		v, ok := sec.Data[ref.Key]
		if !ok {
			if s, sok := sec.StringData[ref.Key]; sok {
				return s, true, nil
			}
			if isOptional(ref.Optional) {
				return "", false, nil
			}
			return "", false, fmt.Errorf("env %s: secret %q has no key %q", e.Name, ref.Name, ref.Key)
		}
		return string(v), true, nil
	case vf.ConfigMapKeyRef != nil:
		ref := vf.ConfigMapKeyRef
		cm, err := g.ConfigMap(ctx, pod.Namespace, ref.Name)
		if err != nil {
			if isOptional(ref.Optional) {
				return "", false, nil
			}
			return "", false, fmt.Errorf("env %s: configmap %q: %w", e.Name, ref.Name, err)
		}
		v, ok := cm.Data[ref.Key]
		if !ok {
			if isOptional(ref.Optional) {
				return "", false, nil
			}
			return "", false, fmt.Errorf("env %s: configmap %q has no key %q", e.Name, ref.Name, ref.Key)
		}
		return v, true, nil
	case vf.FieldRef != nil:
		v, err := podField(pod, vf.FieldRef.FieldPath)
		if err != nil {
			return "", false, fmt.Errorf("env %s: %w", e.Name, err)
		}
		return v, true, nil
	case vf.ResourceFieldRef != nil:
		res := vf.ResourceFieldRef.Resource
		if strings.HasPrefix(res, "limits.") {
			if q, ok := c.Resources.Limits[corev1.ResourceName(strings.TrimPrefix(res, "limits."))]; ok {
				return q.String(), true, nil
			}
		}
		if strings.HasPrefix(res, "requests.") {
			if q, ok := c.Resources.Requests[corev1.ResourceName(strings.TrimPrefix(res, "requests."))]; ok {
				return q.String(), true, nil
			}
		}
		// Without a limit a kubelet reports the node's allocatable; a local
		// process has no such figure, so it gets nothing.
		return "", false, nil
	}
	return "", false, nil
}

func isOptional(b *bool) bool { return b != nil && *b }

// podField resolves a downward-API field path.
func podField(pod *corev1.Pod, path string) (string, error) {
	switch path {
	case "metadata.name":
		return pod.Name, nil
	case "metadata.namespace":
		return pod.Namespace, nil
	case "metadata.uid":
		return string(pod.UID), nil
	case "spec.nodeName":
		return pod.Spec.NodeName, nil
	case "spec.serviceAccountName":
		return pod.Spec.ServiceAccountName, nil
	case "status.podIP":
		return pod.Status.PodIP, nil
	case "status.hostIP":
		return pod.Status.HostIP, nil
	}
	for _, p := range []struct {
		prefix string
		m      map[string]string
	}{{"metadata.labels['", pod.Labels}, {"metadata.annotations['", pod.Annotations}} {
		if strings.HasPrefix(path, p.prefix) && strings.HasSuffix(path, "']") {
			return p.m[strings.TrimSuffix(strings.TrimPrefix(path, p.prefix), "']")], nil
		}
	}
	return "", fmt.Errorf("unsupported field path %q", path)
}

// expandVars expands $(NAME) with the variables defined so far, as the
// kubelet does: $$ is a literal $, and an undefined reference stays as is.
func expandVars(s string, vals map[string]string) string {
	if !strings.Contains(s, "$") {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '$' || i+1 >= len(s) {
			b.WriteByte(s[i])
			continue
		}
		switch s[i+1] {
		case '$':
			b.WriteByte('$')
			i++
		case '(':
			end := strings.IndexByte(s[i+2:], ')')
			if end < 0 {
				b.WriteString(s[i:])
				return b.String()
			}
			name := s[i+2 : i+2+end]
			if v, ok := vals[name]; ok {
				b.WriteString(v)
			} else {
				b.WriteString(s[i : i+3+end])
			}
			i += 2 + end
		default:
			b.WriteByte('$')
		}
	}
	return b.String()
}
