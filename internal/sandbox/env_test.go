package sandbox

import (
	"context"
	"reflect"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/utils/ptr"
)

type fakeObjects struct {
	secrets    map[string]map[string][]byte
	configMaps map[string]map[string]string
}

func (f fakeObjects) Secret(_ context.Context, ns, name string) (*corev1.Secret, error) {
	d, ok := f.secrets[ns+"/"+name]
	if !ok {
		return nil, apierrors.NewNotFound(schema.GroupResource{Resource: "secrets"}, name)
	}
	return &corev1.Secret{Data: d}, nil
}

func (f fakeObjects) ConfigMap(_ context.Context, ns, name string) (*corev1.ConfigMap, error) {
	d, ok := f.configMaps[ns+"/"+name]
	if !ok {
		return nil, apierrors.NewNotFound(schema.GroupResource{Resource: "configmaps"}, name)
	}
	return &corev1.ConfigMap{Data: d}, nil
}

func secretRef(name, key string, optional bool) *corev1.EnvVarSource {
	return &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{
		LocalObjectReference: corev1.LocalObjectReference{Name: name}, Key: key, Optional: ptr.To(optional),
	}}
}

func TestResolveEnv(t *testing.T) {
	objs := fakeObjects{
		secrets:    map[string]map[string][]byte{"ns/kafka-user": {"username": []byte("alice"), "password": []byte("s3cret")}},
		configMaps: map[string]map[string]string{"ns/settings": {"WORK_MS": "20", "MODE": "fast"}},
	}
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "orders-abc", Namespace: "ns", UID: "u-1", Labels: map[string]string{"app": "orders"}},
		Spec:       corev1.PodSpec{NodeName: "kwok-node-1"},
	}
	tests := []struct {
		name    string
		c       corev1.Container
		want    []string
		wantErr string
	}{
		{
			name: "plain values with $(VAR) expansion and escapes",
			c: corev1.Container{Env: []corev1.EnvVar{
				{Name: "KAFKA_TOPICS", Value: "orders"},
				{Name: "DLT", Value: "$(KAFKA_TOPICS).dlt"},
				{Name: "LITERAL", Value: "$$(KAFKA_TOPICS) $(UNDEFINED)"},
			}},
			want: []string{"KAFKA_TOPICS=orders", "DLT=orders.dlt", "LITERAL=$(KAFKA_TOPICS) $(UNDEFINED)"},
		},
		{
			name: "secretKeyRef and configMapKeyRef",
			c: corev1.Container{Env: []corev1.EnvVar{
				{Name: "KAFKA_SASL_USERNAME", ValueFrom: secretRef("kafka-user", "username", false)},
				{Name: "KAFKA_SASL_PASSWORD", ValueFrom: secretRef("kafka-user", "password", false)},
				{Name: "WORK_MS", ValueFrom: &corev1.EnvVarSource{ConfigMapKeyRef: &corev1.ConfigMapKeySelector{
					LocalObjectReference: corev1.LocalObjectReference{Name: "settings"}, Key: "WORK_MS"}}},
			}},
			want: []string{"KAFKA_SASL_USERNAME=alice", "KAFKA_SASL_PASSWORD=s3cret", "WORK_MS=20"},
		},
		{
			name: "downward API fields",
			c: corev1.Container{Env: []corev1.EnvVar{
				{Name: "POD", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.name"}}},
				{Name: "NODE", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "spec.nodeName"}}},
				{Name: "APP", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.labels['app']"}}},
			}},
			want: []string{"POD=orders-abc", "NODE=kwok-node-1", "APP=orders"},
		},
		{
			name: "envFrom first, env overrides it",
			c: corev1.Container{
				EnvFrom: []corev1.EnvFromSource{{ConfigMapRef: &corev1.ConfigMapEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: "settings"}}}},
				Env:     []corev1.EnvVar{{Name: "MODE", Value: "slow"}},
			},
			want: []string{"MODE=slow", "WORK_MS=20"},
		},
		{
			name: "optional missing secret is skipped",
			c:    corev1.Container{Env: []corev1.EnvVar{{Name: "X", ValueFrom: secretRef("absent", "k", true)}}},
			want: []string{},
		},
		{
			name:    "required missing secret is an error",
			c:       corev1.Container{Env: []corev1.EnvVar{{Name: "KAFKA_SASL_PASSWORD", ValueFrom: secretRef("absent", "password", false)}}},
			wantErr: `env KAFKA_SASL_PASSWORD: secret "absent"`,
		},
		{
			name:    "required missing key is an error",
			c:       corev1.Container{Env: []corev1.EnvVar{{Name: "P", ValueFrom: secretRef("kafka-user", "token", false)}}},
			wantErr: `secret "kafka-user" has no key "token"`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ResolveEnv(context.Background(), objs, pod, &tt.c)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want it to contain %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if tt.name == "envFrom first, env overrides it" {
				// Map iteration order of envFrom is not fixed; compare as a set.
				if len(got) != 2 || !contains(got, "MODE=slow") || !contains(got, "WORK_MS=20") {
					t.Fatalf("got %v, want %v", got, tt.want)
				}
				return
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("got %v, want %v", got, tt.want)
			}
		})
	}
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}
