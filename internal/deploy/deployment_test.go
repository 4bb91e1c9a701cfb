package deploy

import (
	"github.com/lagscale/lagscale/pkg/contract"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/lagscale/lagscale/api/v1alpha1"
)

func consumer(mut func(*v1alpha1.EventConsumer)) *v1alpha1.EventConsumer {
	ec := &v1alpha1.EventConsumer{
		ObjectMeta: metav1.ObjectMeta{Name: "orders", Namespace: "shop", UID: "uid-1"},
		Spec: v1alpha1.EventConsumerSpec{
			Topics:        []string{"orders", "refunds"},
			ConsumerGroup: "orders-handler",
			Kafka:         v1alpha1.KafkaConnection{BootstrapServers: []string{"k1:9092", "k2:9092"}},
			Handler:       &v1alpha1.HandlerSpec{Image: "example/handler:1"},
		},
	}
	if mut != nil {
		mut(ec)
	}
	return ec
}

func envMap(c corev1.Container) map[string]corev1.EnvVar {
	m := map[string]corev1.EnvVar{}
	for _, e := range c.Env {
		m[e.Name] = e
	}
	return m
}

func TestBuild(t *testing.T) {
	tests := []struct {
		name    string
		ec      *v1alpha1.EventConsumer
		conn    func(*v1alpha1.EventConsumer) Connection
		wantErr string
		check   func(t *testing.T, c corev1.Container, spec corev1.PodSpec)
	}{
		{
			name:  "plaintext contract",
			ec:    consumer(nil),
			check: checkPlaintextContract,
		},
		{
			name: "sasl credentials are secret references, never values",
			ec: consumer(func(ec *v1alpha1.EventConsumer) {
				ec.Spec.Kafka.SASL = &v1alpha1.SASLConfig{Mechanism: v1alpha1.SASLScramSHA512, SecretRef: v1alpha1.LocalObjectRef{Name: "kafka-user"}}
				ec.Spec.DeadLetterTopic = "orders.dlt"
			}),
			check: checkSASLSecretRefs,
		},
		{
			name: "tls material is a mounted projected volume",
			ec: consumer(func(ec *v1alpha1.EventConsumer) {
				ec.Spec.Kafka.TLS = &v1alpha1.TLSConfig{
					CASecretRef:   &v1alpha1.SecretKeyRef{Name: "kafka-ca", Key: "ca.pem"},
					CertSecretRef: &v1alpha1.SecretKeyRef{Name: "client", Key: "cert.pem"},
					KeySecretRef:  &v1alpha1.SecretKeyRef{Name: "client", Key: "key.pem"},
				}
				ec.Spec.Kafka.SASL = &v1alpha1.SASLConfig{Mechanism: v1alpha1.SASLPlain, SecretRef: v1alpha1.LocalObjectRef{Name: "u"}}
			}),
			check: checkTLSVolume,
		},
		{
			name:  "groupType Consumer is KAFKA_GROUP_TYPE=consumer",
			ec:    consumer(func(ec *v1alpha1.EventConsumer) { ec.Spec.GroupType = v1alpha1.GroupTypeConsumer }),
			check: checkGroupType(contract.GroupConsumer),
		},
		{
			name:  "groupType Share is KAFKA_GROUP_TYPE=share",
			ec:    consumer(func(ec *v1alpha1.EventConsumer) { ec.Spec.GroupType = v1alpha1.GroupTypeShare }),
			check: checkGroupType(contract.GroupShare),
		},
		{
			name: "groupType Streams without topics is KAFKA_GROUP_TYPE=streams and an empty KAFKA_TOPICS",
			ec: consumer(func(ec *v1alpha1.EventConsumer) {
				ec.Spec.GroupType = v1alpha1.GroupTypeStreams
				ec.Spec.Topics = nil
			}),
			check: checkStreamsTopics,
		},
		{
			name: "template: the container named handler gets the env, user env overrides by name",
			ec: consumer(func(ec *v1alpha1.EventConsumer) {
				ec.Spec.Handler = &v1alpha1.HandlerSpec{
					Env:       []corev1.EnvVar{{Name: "WORK_MS", Value: "5"}, {Name: contract.EnvAutoOffsetReset, Value: "earliest"}},
					Resources: corev1.ResourceRequirements{Limits: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("500m")}},
				}
				ec.Spec.Template = &corev1.PodTemplateSpec{
					ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"team": "shop"}},
					Spec: corev1.PodSpec{Containers: []corev1.Container{
						{Name: "sidecar", Image: "proxy:1"},
						{Name: "handler", Image: "tmpl/handler:2", Env: []corev1.EnvVar{{Name: "A", Value: "1"}}},
					}},
				}
			}),
			check: checkTemplateHandler,
		},
		{
			name:    "template without containers and no image",
			ec:      consumer(func(ec *v1alpha1.EventConsumer) { ec.Spec.Handler = nil; ec.Spec.Template = &corev1.PodTemplateSpec{} }),
			wantErr: "has no containers",
		},
		{
			name: "cluster reference supplies servers and auth",
			ec: consumer(func(ec *v1alpha1.EventConsumer) {
				ec.Spec.Kafka = v1alpha1.KafkaConnection{ClusterRef: &v1alpha1.LocalObjectRef{Name: "main"}}
			}),
			conn: func(ec *v1alpha1.EventConsumer) Connection {
				return ConnectionOf(ec, &v1alpha1.KafkaCluster{Spec: v1alpha1.KafkaClusterSpec{
					BootstrapServers: []string{"main-kafka:9093"},
					TLS:              &v1alpha1.TLSConfig{InsecureSkipVerify: true},
				}})
			},
			check: checkClusterRefConnection,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			conn := ConnectionOf(tt.ec, nil)
			if tt.conn != nil {
				conn = tt.conn(tt.ec)
			}
			dep, err := Build(tt.ec, conn, 3)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			checkDeploymentMeta(t, tt.ec, dep)
			spec := dep.Spec.Template.Spec
			tt.check(t, spec.Containers[handlerIndex(spec.Containers)], spec)
		})
	}
}

// checkPlaintextContract: without TLS or SASL the contract names the brokers,
// topics, group and defaults, sets nothing that was not configured, and
// mounts nothing.
func checkPlaintextContract(t *testing.T, c corev1.Container, spec corev1.PodSpec) {
	t.Helper()
	env := envMap(c)
	want := map[string]string{
		contract.EnvBootstrapServers: "k1:9092,k2:9092",
		contract.EnvTopics:           "orders,refunds",
		contract.EnvConsumerGroup:    "orders-handler",
		contract.EnvSecurityProtocol: "PLAINTEXT",
		contract.EnvAutoOffsetReset:  "latest",
		contract.EnvGroupType:        "classic",
		contract.EnvConsumer:         "shop/orders",
	}
	for k, v := range want {
		if env[k].Value != v {
			t.Errorf("%s = %q, want %q", k, env[k].Value, v)
		}
	}
	for _, k := range []string{contract.EnvSASLUsername, contract.EnvTLSCAFile, contract.EnvDeadLetterTopic} {
		if _, ok := env[k]; ok {
			t.Errorf("%s set without being configured", k)
		}
	}
	if c.Name != HandlerContainer || c.Image != "example/handler:1" {
		t.Errorf("container = %s %s", c.Name, c.Image)
	}
	if len(spec.Volumes) != 0 {
		t.Errorf("unexpected volumes %v", spec.Volumes)
	}
}

// checkSASLSecretRefs: SASL credentials are secret references, never
// values.
func checkSASLSecretRefs(t *testing.T, c corev1.Container, _ corev1.PodSpec) {
	t.Helper()
	env := envMap(c)
	if env[contract.EnvSecurityProtocol].Value != "SASL_PLAINTEXT" || env[contract.EnvSASLMechanism].Value != "SCRAM-SHA-512" {
		t.Errorf("protocol %q mechanism %q", env[contract.EnvSecurityProtocol].Value, env[contract.EnvSASLMechanism].Value)
	}
	for k, key := range map[string]string{contract.EnvSASLUsername: "username", contract.EnvSASLPassword: "password"} {
		e := env[k]
		if e.Value != "" || e.ValueFrom == nil || e.ValueFrom.SecretKeyRef == nil ||
			e.ValueFrom.SecretKeyRef.Name != "kafka-user" || e.ValueFrom.SecretKeyRef.Key != key {
			t.Errorf("%s = %+v, want secretKeyRef kafka-user/%s", k, e, key)
		}
	}
	if env[contract.EnvDeadLetterTopic].Value != "orders.dlt" {
		t.Errorf("dead letter topic %q", env[contract.EnvDeadLetterTopic].Value)
	}
}

// checkTLSVolume: TLS material is a read-only projected volume, and the
// contract names its files.
func checkTLSVolume(t *testing.T, c corev1.Container, spec corev1.PodSpec) {
	t.Helper()
	env := envMap(c)
	if env[contract.EnvSecurityProtocol].Value != "SASL_SSL" {
		t.Errorf("protocol %q", env[contract.EnvSecurityProtocol].Value)
	}
	if env[contract.EnvTLSCAFile].Value != TLSMountPath+"/ca.crt" || env[contract.EnvTLSCertFile].Value != TLSMountPath+"/tls.crt" || env[contract.EnvTLSKeyFile].Value != TLSMountPath+"/tls.key" {
		t.Errorf("tls files %v", env)
	}
	if len(spec.Volumes) != 1 || spec.Volumes[0].Projected == nil || len(spec.Volumes[0].Projected.Sources) != 3 {
		t.Fatalf("volumes %+v", spec.Volumes)
	}
	got := map[string]string{}
	for _, s := range spec.Volumes[0].Projected.Sources {
		got[s.Secret.Items[0].Path] = s.Secret.Name + "/" + s.Secret.Items[0].Key
	}
	if got["ca.crt"] != "kafka-ca/ca.pem" || got["tls.crt"] != "client/cert.pem" || got["tls.key"] != "client/key.pem" {
		t.Errorf("projection %v", got)
	}
	if len(c.VolumeMounts) != 1 || !c.VolumeMounts[0].ReadOnly || c.VolumeMounts[0].MountPath != TLSMountPath {
		t.Errorf("mounts %+v", c.VolumeMounts)
	}
}

// checkStreamsTopics: a streams group without topics has an empty but
// present KAFKA_TOPICS: the topology names the topics.
func checkStreamsTopics(t *testing.T, c corev1.Container, _ corev1.PodSpec) {
	t.Helper()
	env := envMap(c)
	if got := env[contract.EnvGroupType].Value; got != contract.GroupStreams {
		t.Errorf("%s = %q, want %q", contract.EnvGroupType, got, contract.GroupStreams)
	}
	if v, ok := env[contract.EnvTopics]; !ok || v.Value != "" {
		t.Errorf("%s = %+v (present %v), want present and empty: the topology names the topics", contract.EnvTopics, v, ok)
	}
}

// checkTemplateHandler: in a template the container named handler gets
// the env, and the user env overrides by name.
func checkTemplateHandler(t *testing.T, c corev1.Container, spec corev1.PodSpec) {
	t.Helper()
	if c.Name != "handler" || c.Image != "tmpl/handler:2" {
		t.Fatalf("container %s %s", c.Name, c.Image)
	}
	env := envMap(c)
	if env["A"].Value != "1" || env["WORK_MS"].Value != "5" || env[contract.EnvAutoOffsetReset].Value != "earliest" {
		t.Errorf("env %v", c.Env)
	}
	if c.Resources.Limits.Cpu().String() != "500m" {
		t.Errorf("resources %v", c.Resources)
	}
	if len(spec.Containers[0].Env) != 0 {
		t.Errorf("sidecar got env %v", spec.Containers[0].Env)
	}
}

// checkGroupType: spec.groupType becomes KAFKA_GROUP_TYPE.
func checkGroupType(want string) func(*testing.T, corev1.Container, corev1.PodSpec) {
	return func(t *testing.T, c corev1.Container, _ corev1.PodSpec) {
		t.Helper()
		if got := envMap(c)[contract.EnvGroupType].Value; got != want {
			t.Errorf("%s = %q, want %q", contract.EnvGroupType, got, want)
		}
	}
}

// checkDeploymentMeta: every built Deployment has the requested replicas,
// the consumer's name, namespace and owner, the selector labels on its
// pods and lagscale's labels.
func checkDeploymentMeta(t *testing.T, ec *v1alpha1.EventConsumer, dep *appsv1.Deployment) {
	t.Helper()
	if *dep.Spec.Replicas != 3 {
		t.Errorf("replicas %d", *dep.Spec.Replicas)
	}
	if dep.Name != "orders" || dep.Namespace != "shop" {
		t.Errorf("name %s/%s", dep.Namespace, dep.Name)
	}
	or := dep.OwnerReferences
	if len(or) != 1 || or[0].Kind != "EventConsumer" || or[0].UID != "uid-1" || !*or[0].Controller {
		t.Errorf("owner %+v", or)
	}
	for k, v := range SelectorLabels(ec) {
		if dep.Spec.Template.Labels[k] != v {
			t.Errorf("pod label %s missing", k)
		}
	}
	if dep.Labels[LabelManagedBy] != ManagedBy || dep.Labels[LabelName] != "orders" {
		t.Errorf("labels %v", dep.Labels)
	}
}

func TestBuildDoesNotMutateSpec(t *testing.T) {
	ec := consumer(func(ec *v1alpha1.EventConsumer) {
		ec.Spec.Template = &corev1.PodTemplateSpec{Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "handler", Image: "x"}}}}
	})
	if _, err := Build(ec, ConnectionOf(ec, nil), 1); err != nil {
		t.Fatal(err)
	}
	if len(ec.Spec.Template.Spec.Containers[0].Env) != 0 || ec.Spec.Template.Labels != nil {
		t.Fatal("Build modified the EventConsumer's template")
	}
}

func TestSecretNames(t *testing.T) {
	conn := Connection{
		SASL: &v1alpha1.SASLConfig{SecretRef: v1alpha1.LocalObjectRef{Name: "b"}},
		TLS:  &v1alpha1.TLSConfig{CASecretRef: &v1alpha1.SecretKeyRef{Name: "a"}, CertSecretRef: &v1alpha1.SecretKeyRef{Name: "b"}, KeySecretRef: &v1alpha1.SecretKeyRef{Name: "b"}},
	}
	if got := strings.Join(conn.SecretNames(), ","); got != "a,b" {
		t.Fatalf("SecretNames = %s", got)
	}
}

// checkClusterRefConnection: a cluster reference supplies the servers and
// the TLS settings.
func checkClusterRefConnection(t *testing.T, c corev1.Container, spec corev1.PodSpec) {
	t.Helper()
	env := envMap(c)
	if env[contract.EnvBootstrapServers].Value != "main-kafka:9093" || env[contract.EnvSecurityProtocol].Value != "SSL" || env[contract.EnvTLSInsecure].Value != "true" {
		t.Errorf("env %v", c.Env)
	}
	if len(spec.Volumes) != 0 {
		t.Errorf("no TLS files configured, got volumes %v", spec.Volumes)
	}
}
