// Package deploy builds the Deployment that runs an EventConsumer's handler.
// It is a pure function of the EventConsumer, its resolved Kafka connection
// and the replica count: no client, no clock.
package deploy

import (
	"fmt"
	"sort"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/lagscale/lagscale/api/v1alpha1"
	"github.com/lagscale/lagscale/pkg/contract"
)

// Labels and annotations lagscale puts on the objects it manages.
const (
	LabelName      = "app.kubernetes.io/name"
	LabelManagedBy = "app.kubernetes.io/managed-by"
	LabelConsumer  = "lagscale.dev/consumer"
	ManagedBy      = "lagscale"

	// HandlerContainer is the name of the container that receives the
	// Kafka environment.
	HandlerContainer = "handler"

	// TLSVolume is the projected volume holding the TLS files, mounted at
	// TLSMountPath.
	TLSVolume    = "lagscale-kafka-tls"
	TLSMountPath = "/var/run/lagscale/kafka-tls"

	// TLSFileMode is the mode of the TLS files: readable by a non-root
	// handler whatever its uid.
	TLSFileMode = 0o444
)

// Connection is an EventConsumer's Kafka connection after a clusterRef has
// been resolved: where the brokers are and which Secrets hold credentials.
// It holds references only, never secret values.
type Connection struct {
	BootstrapServers []string
	TLS              *v1alpha1.TLSConfig
	SASL             *v1alpha1.SASLConfig
}

// ConnectionOf returns the connection an EventConsumer declares inline, or
// the one of the KafkaCluster it references (cluster must then be non-nil).
func ConnectionOf(ec *v1alpha1.EventConsumer, cluster *v1alpha1.KafkaCluster) Connection {
	if ec.Spec.Kafka.ClusterRef != nil && cluster != nil {
		return Connection{
			BootstrapServers: cluster.Spec.BootstrapServers,
			TLS:              cluster.Spec.TLS,
			SASL:             cluster.Spec.SASL,
		}
	}
	return Connection{
		BootstrapServers: ec.Spec.Kafka.BootstrapServers,
		TLS:              ec.Spec.Kafka.TLS,
		SASL:             ec.Spec.Kafka.SASL,
	}
}

// SecurityProtocol returns the Kafka security.protocol that a connection
// implies.
func (c Connection) SecurityProtocol() string {
	switch {
	case c.TLS != nil && c.SASL != nil:
		return "SASL_SSL"
	case c.TLS != nil:
		return "SSL"
	case c.SASL != nil:
		return "SASL_PLAINTEXT"
	default:
		return "PLAINTEXT"
	}
}

// SelectorLabels are the immutable labels that select the handler pods.
func SelectorLabels(ec *v1alpha1.EventConsumer) map[string]string {
	return map[string]string{LabelConsumer: ec.Name}
}

// Labels are the labels on the Deployment and its pods.
func Labels(ec *v1alpha1.EventConsumer) map[string]string {
	return map[string]string{
		LabelName:      ec.Name,
		LabelManagedBy: ManagedBy,
		LabelConsumer:  ec.Name,
	}
}

// Build returns the desired Deployment for ec with the given replica count.
// It returns an error only for a spec the API server accepted but that
// cannot become a Deployment (a template with no container).
func Build(ec *v1alpha1.EventConsumer, conn Connection, replicas int32) (*appsv1.Deployment, error) {
	tmpl := corev1.PodTemplateSpec{}
	if ec.Spec.Template != nil {
		tmpl = *ec.Spec.Template.DeepCopy()
	}
	idx := handlerIndex(tmpl.Spec.Containers)
	if idx < 0 {
		if ec.Spec.Template != nil && len(tmpl.Spec.Containers) == 0 && (ec.Spec.Handler == nil || ec.Spec.Handler.Image == "") {
			return nil, fmt.Errorf("spec.template has no containers and spec.handler.image is empty: add a container named %q or set spec.handler.image", HandlerContainer)
		}
		tmpl.Spec.Containers = append([]corev1.Container{{Name: HandlerContainer}}, tmpl.Spec.Containers...)
		idx = 0
	}
	c := &tmpl.Spec.Containers[idx]
	if h := ec.Spec.Handler; h != nil {
		if h.Image != "" {
			c.Image = h.Image
		}
		if len(h.Command) > 0 {
			c.Command = append([]string(nil), h.Command...)
		}
		if len(h.Args) > 0 {
			c.Args = append([]string(nil), h.Args...)
		}
		if len(h.Resources.Limits) > 0 || len(h.Resources.Requests) > 0 || len(h.Resources.Claims) > 0 {
			c.Resources = *h.Resources.DeepCopy()
		}
	}
	if c.Image == "" {
		return nil, fmt.Errorf("the handler container %q has no image: set spec.handler.image or the container's image in spec.template", c.Name)
	}

	var userEnv []corev1.EnvVar
	userEnv = append(userEnv, c.Env...)
	if ec.Spec.Handler != nil {
		userEnv = append(userEnv, ec.Spec.Handler.Env...)
	}
	c.Env = mergeEnv(contractEnv(ec, conn), userEnv)

	if vol, mounts := tlsVolume(conn); vol != nil {
		tmpl.Spec.Volumes = append(removeVolume(tmpl.Spec.Volumes, TLSVolume), *vol)
		c.VolumeMounts = append(removeMount(c.VolumeMounts, TLSVolume), mounts...)
	}

	labels := Labels(ec)
	if tmpl.Labels == nil {
		tmpl.Labels = map[string]string{}
	}
	for k, v := range labels {
		tmpl.Labels[k] = v
	}

	dep := &appsv1.Deployment{
		TypeMeta: metav1.TypeMeta{APIVersion: "apps/v1", Kind: "Deployment"},
		ObjectMeta: metav1.ObjectMeta{
			Name:      ec.Name,
			Namespace: ec.Namespace,
			Labels:    labels,
			OwnerReferences: []metav1.OwnerReference{{
				APIVersion:         v1alpha1.GroupVersion.String(),
				Kind:               "EventConsumer",
				Name:               ec.Name,
				UID:                ec.UID,
				Controller:         ptr.To(true),
				BlockOwnerDeletion: ptr.To(true),
			}},
		},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To(replicas),
			Selector: &metav1.LabelSelector{MatchLabels: SelectorLabels(ec)},
			Template: tmpl,
		},
	}
	return dep, nil
}

// handlerIndex finds the container named "handler", or else the first.
func handlerIndex(cs []corev1.Container) int {
	for i := range cs {
		if cs[i].Name == HandlerContainer {
			return i
		}
	}
	if len(cs) > 0 {
		return 0
	}
	return -1
}

// contractEnv is the environment every handler receives.
func contractEnv(ec *v1alpha1.EventConsumer, conn Connection) []corev1.EnvVar {
	env := []corev1.EnvVar{
		{Name: contract.EnvBootstrapServers, Value: strings.Join(conn.BootstrapServers, ",")},
		{Name: contract.EnvTopics, Value: strings.Join(ec.Spec.Topics, ",")},
		{Name: contract.EnvConsumerGroup, Value: ec.Spec.ConsumerGroup},
		{Name: contract.EnvSecurityProtocol, Value: conn.SecurityProtocol()},
	}
	reset := ec.Spec.Scaling.OffsetResetPolicy
	if reset == "" {
		reset = v1alpha1.OffsetResetLatest
	}
	env = append(env, corev1.EnvVar{Name: contract.EnvAutoOffsetReset, Value: string(reset)})
	env = append(env, corev1.EnvVar{Name: contract.EnvGroupType, Value: GroupTypeEnv(ec.Spec.GroupType)})
	if s := conn.SASL; s != nil {
		env = append(env,
			corev1.EnvVar{Name: contract.EnvSASLMechanism, Value: string(s.Mechanism)},
			secretEnv(contract.EnvSASLUsername, s.SecretRef.Name, "username"),
			secretEnv(contract.EnvSASLPassword, s.SecretRef.Name, "password"),
		)
	}
	if t := conn.TLS; t != nil {
		if t.CASecretRef != nil {
			env = append(env, corev1.EnvVar{Name: contract.EnvTLSCAFile, Value: TLSMountPath + "/ca.crt"})
		}
		if t.CertSecretRef != nil && t.KeySecretRef != nil {
			env = append(env,
				corev1.EnvVar{Name: contract.EnvTLSCertFile, Value: TLSMountPath + "/tls.crt"},
				corev1.EnvVar{Name: contract.EnvTLSKeyFile, Value: TLSMountPath + "/tls.key"},
			)
		}
		if t.InsecureSkipVerify {
			env = append(env, corev1.EnvVar{Name: contract.EnvTLSInsecure, Value: "true"})
		}
	}
	env = append(env, corev1.EnvVar{Name: contract.EnvConsumer, Value: ec.Namespace + "/" + ec.Name})
	if ec.Spec.DeadLetterTopic != "" {
		env = append(env, corev1.EnvVar{Name: contract.EnvDeadLetterTopic, Value: ec.Spec.DeadLetterTopic})
	}
	return env
}

func secretEnv(name, secret, key string) corev1.EnvVar {
	return corev1.EnvVar{Name: name, ValueFrom: &corev1.EnvVarSource{
		SecretKeyRef: &corev1.SecretKeySelector{
			LocalObjectReference: corev1.LocalObjectReference{Name: secret},
			Key:                  key,
		},
	}}
}

// mergeEnv returns base with every variable of override appended, a name in
// override replacing the same name in base. Order is kept so that
// $(VAR) references in user values resolve as Kubernetes documents.
func mergeEnv(base, override []corev1.EnvVar) []corev1.EnvVar {
	pos := map[string]int{}
	out := make([]corev1.EnvVar, 0, len(base)+len(override))
	for _, e := range base {
		pos[e.Name] = len(out)
		out = append(out, e)
	}
	for _, e := range override {
		if i, ok := pos[e.Name]; ok {
			out[i] = e
			continue
		}
		pos[e.Name] = len(out)
		out = append(out, e)
	}
	return out
}

// tlsVolume projects the TLS Secrets' keys into one read-only volume with
// fixed file names, so the handler finds them at the paths in its env.
func tlsVolume(conn Connection) (*corev1.Volume, []corev1.VolumeMount) {
	t := conn.TLS
	if t == nil || (t.CASecretRef == nil && t.CertSecretRef == nil) {
		return nil, nil
	}
	files := map[string]*v1alpha1.SecretKeyRef{"ca.crt": t.CASecretRef}
	if t.CertSecretRef != nil && t.KeySecretRef != nil {
		files["tls.crt"] = t.CertSecretRef
		files["tls.key"] = t.KeySecretRef
	}
	names := make([]string, 0, len(files))
	for f, ref := range files {
		if ref != nil {
			names = append(names, f)
		}
	}
	sort.Strings(names)
	var sources []corev1.VolumeProjection
	for _, f := range names {
		ref := files[f]
		sources = append(sources, corev1.VolumeProjection{Secret: &corev1.SecretProjection{
			LocalObjectReference: corev1.LocalObjectReference{Name: ref.Name},
			Items:                []corev1.KeyToPath{{Key: ref.Key, Path: f}},
		}})
	}
	vol := &corev1.Volume{Name: TLSVolume, VolumeSource: corev1.VolumeSource{
		// 0444: the kubelet writes the files as root, and the handler
		// runs as whatever uid its image or template says (65532 for the
		// distroless examples), usually without an fsGroup. Readable by
		// every uid in the pod is what lets any handler read them; the
		// volume is private to the pod and read-only.
		Projected: &corev1.ProjectedVolumeSource{Sources: sources, DefaultMode: ptr.To[int32](TLSFileMode)},
	}}
	return vol, []corev1.VolumeMount{{Name: TLSVolume, MountPath: TLSMountPath, ReadOnly: true}}
}

func removeVolume(vs []corev1.Volume, name string) []corev1.Volume {
	out := vs[:0:0]
	for _, v := range vs {
		if v.Name != name {
			out = append(out, v)
		}
	}
	return out
}

func removeMount(ms []corev1.VolumeMount, name string) []corev1.VolumeMount {
	out := ms[:0:0]
	for _, m := range ms {
		if m.Name != name {
			out = append(out, m)
		}
	}
	return out
}

// SecretNames lists the Secrets a connection needs, sorted and unique, so
// the reconciler can wait for them and watch them.
func (c Connection) SecretNames() []string {
	set := map[string]bool{}
	if c.SASL != nil {
		set[c.SASL.SecretRef.Name] = true
	}
	if t := c.TLS; t != nil {
		for _, r := range []*v1alpha1.SecretKeyRef{t.CASecretRef, t.CertSecretRef, t.KeySecretRef} {
			if r != nil {
				set[r.Name] = true
			}
		}
	}
	out := make([]string, 0, len(set))
	for n := range set {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// GroupTypeEnv is the contract's KAFKA_GROUP_TYPE value for spec.groupType;
// an unset type is v1alpha1.DefaultGroupType.
func GroupTypeEnv(t v1alpha1.GroupType) string {
	switch t {
	case v1alpha1.GroupTypeConsumer:
		return contract.GroupConsumer
	case v1alpha1.GroupTypeShare:
		return contract.GroupShare
	case v1alpha1.GroupTypeStreams:
		return contract.GroupStreams
	}
	return contract.GroupClassic
}
