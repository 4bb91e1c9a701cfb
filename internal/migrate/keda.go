// Package migrate turns KEDA ScaledObjects with Kafka triggers, their
// TriggerAuthentications and the Deployments they scale into lagscale
// EventConsumers (and KafkaClusters where consumers share brokers), and
// says for every field whether it was mapped, approximated or is
// unsupported. It is pure: the inputs are decoded objects, the Deployment
// lookup is an interface, and nothing here talks to a cluster.
package migrate

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
)

// KEDA's API group; its objects are read with the small types below
// rather than KEDA's own module, which lagscale does not depend on.
const kedaGroup = "keda.sh"

// ScaledObject is the part of KEDA's ScaledObject that migrate reads.
type ScaledObject struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`
	Spec              ScaledObjectSpec `json:"spec"`
	// raw keeps the spec's keys, to report those migrate does not know.
	raw map[string]json.RawMessage
}

// ScaledObjectSpec is KEDA's ScaledObject spec.
type ScaledObjectSpec struct {
	ScaleTargetRef        *ScaleTarget `json:"scaleTargetRef"`
	PollingInterval       *int32       `json:"pollingInterval,omitempty"`
	InitialCooldownPeriod *int32       `json:"initialCooldownPeriod,omitempty"`
	CooldownPeriod        *int32       `json:"cooldownPeriod,omitempty"`
	IdleReplicaCount      *int32       `json:"idleReplicaCount,omitempty"`
	MinReplicaCount       *int32       `json:"minReplicaCount,omitempty"`
	MaxReplicaCount       *int32       `json:"maxReplicaCount,omitempty"`
	Advanced              *Advanced    `json:"advanced,omitempty"`
	Triggers              []Trigger    `json:"triggers"`
	Fallback              *struct {
		FailureThreshold int32 `json:"failureThreshold"`
		Replicas         int32 `json:"replicas"`
	} `json:"fallback,omitempty"`
}

// ScaleTarget names the scaled workload.
type ScaleTarget struct {
	Name                   string `json:"name"`
	APIVersion             string `json:"apiVersion,omitempty"`
	Kind                   string `json:"kind,omitempty"`
	EnvSourceContainerName string `json:"envSourceContainerName,omitempty"`
}

// Advanced is KEDA's spec.advanced.
type Advanced struct {
	HorizontalPodAutoscalerConfig *struct {
		Behavior *autoscalingv2.HorizontalPodAutoscalerBehavior `json:"behavior,omitempty"`
		Name     string                                         `json:"name,omitempty"`
	} `json:"horizontalPodAutoscalerConfig,omitempty"`
	RestoreToOriginalReplicaCount bool `json:"restoreToOriginalReplicaCount,omitempty"`
	ScalingModifiers              struct {
		Formula string `json:"formula,omitempty"`
	} `json:"scalingModifiers,omitempty"`
}

// Trigger is one entry of spec.triggers.
type Trigger struct {
	Type string `json:"type"`
	Name string `json:"name,omitempty"`
	// Metadata is map[string]string in KEDA's API; values written
	// unquoted in a file (allowIdleConsumers: false) are accepted too.
	Metadata          map[string]scalar `json:"metadata"`
	AuthenticationRef *struct {
		Name string `json:"name"`
		Kind string `json:"kind,omitempty"`
	} `json:"authenticationRef,omitempty"`
	MetricType       string `json:"metricType,omitempty"`
	UseCachedMetrics bool   `json:"useCachedMetrics,omitempty"`
}

// scalar is a metadata value: a string, or a number or bool as a string.
type scalar string

func (s *scalar) UnmarshalJSON(b []byte) error {
	var str string
	if err := json.Unmarshal(b, &str); err == nil {
		*s = scalar(str)
		return nil
	}
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	switch v.(type) {
	case bool, float64:
		*s = scalar(strings.TrimSpace(string(b)))
		return nil
	}
	return fmt.Errorf("metadata value %s is not a string", b)
}

// TriggerAuthentication is KEDA's TriggerAuthentication or
// ClusterTriggerAuthentication (Kind tells them apart).
type TriggerAuthentication struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`
	Spec              TriggerAuthSpec `json:"spec"`
	raw               map[string]json.RawMessage
}

// TriggerAuthSpec is the part of a TriggerAuthentication's spec migrate
// maps; every other source (Vault, cloud secret managers, pod identity) is
// reported as unsupported.
type TriggerAuthSpec struct {
	SecretTargetRef    []AuthTargetRef `json:"secretTargetRef,omitempty"`
	ConfigMapTargetRef []AuthTargetRef `json:"configMapTargetRef,omitempty"`
	Env                []struct {
		Parameter     string `json:"parameter"`
		Name          string `json:"name"`
		ContainerName string `json:"containerName,omitempty"`
	} `json:"env,omitempty"`
	PodIdentity *struct {
		Provider string `json:"provider"`
	} `json:"podIdentity,omitempty"`
}

// AuthTargetRef binds a trigger parameter to a key of a Secret or
// ConfigMap.
type AuthTargetRef struct {
	Parameter string `json:"parameter"`
	Name      string `json:"name"`
	Key       string `json:"key"`
}

// Input is everything read from the files (and, with --from-cluster, the
// cluster).
type Input struct {
	ScaledObjects []*ScaledObject
	// Auths are keyed by authKey(kind, namespace, name).
	Auths map[string]*TriggerAuthentication
	// Deployments are keyed by namespace/name.
	Deployments map[string]*appsv1.Deployment
}

// authKey keys a TriggerAuthentication (namespaced) or a
// ClusterTriggerAuthentication (namespace ignored).
func authKey(kind, namespace, name string) string {
	if kind == "ClusterTriggerAuthentication" {
		return kind + "//" + name
	}
	return "TriggerAuthentication/" + namespace + "/" + name
}

// Decode reads a stream of YAML or JSON documents (a List's items count as
// documents) and keeps the ScaledObjects, TriggerAuthentications,
// ClusterTriggerAuthentications and Deployments. Other kinds are ignored;
// a document that is not YAML, or has no kind, is an error naming it.
func Decode(r io.Reader, in *Input) error {
	if in.Auths == nil {
		in.Auths = map[string]*TriggerAuthentication{}
	}
	if in.Deployments == nil {
		in.Deployments = map[string]*appsv1.Deployment{}
	}
	dec := utilyaml.NewYAMLOrJSONDecoder(r, 4096)
	for doc := 1; ; doc++ {
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return fmt.Errorf("document %d is not YAML or JSON: %w", doc, err)
		}
		if len(bytes.TrimSpace(raw)) == 0 || string(bytes.TrimSpace(raw)) == "null" {
			continue
		}
		if err := decodeObject(raw, in, doc); err != nil {
			return err
		}
	}
}

func decodeObject(raw json.RawMessage, in *Input, doc int) error {
	var tm metav1.TypeMeta
	if err := json.Unmarshal(raw, &tm); err != nil {
		return fmt.Errorf("document %d is not a Kubernetes object: %w", doc, err)
	}
	if tm.Kind == "" || tm.APIVersion == "" {
		return fmt.Errorf("document %d is not a Kubernetes object: it has no kind or apiVersion", doc)
	}
	group := strings.SplitN(tm.APIVersion, "/", 2)[0]
	switch {
	case strings.HasSuffix(tm.Kind, "List"):
		var l struct {
			Items []json.RawMessage `json:"items"`
		}
		if err := json.Unmarshal(raw, &l); err != nil {
			return fmt.Errorf("document %d (%s): %w", doc, tm.Kind, err)
		}
		for _, it := range l.Items {
			if err := decodeObject(it, in, doc); err != nil {
				return err
			}
		}
	case group == kedaGroup && tm.Kind == "ScaledObject":
		so := &ScaledObject{}
		if err := json.Unmarshal(raw, so); err != nil {
			return fmt.Errorf("document %d (ScaledObject): %w", doc, err)
		}
		var top struct {
			Spec map[string]json.RawMessage `json:"spec"`
		}
		_ = json.Unmarshal(raw, &top)
		so.raw = top.Spec
		in.ScaledObjects = append(in.ScaledObjects, so)
	case group == kedaGroup && (tm.Kind == "TriggerAuthentication" || tm.Kind == "ClusterTriggerAuthentication"):
		ta := &TriggerAuthentication{}
		if err := json.Unmarshal(raw, ta); err != nil {
			return fmt.Errorf("document %d (%s): %w", doc, tm.Kind, err)
		}
		var top struct {
			Spec map[string]json.RawMessage `json:"spec"`
		}
		_ = json.Unmarshal(raw, &top)
		ta.raw = top.Spec
		in.Auths[authKey(ta.Kind, ta.Namespace, ta.Name)] = ta
	case tm.APIVersion == "apps/v1" && tm.Kind == "Deployment":
		d := &appsv1.Deployment{}
		if err := json.Unmarshal(raw, d); err != nil {
			return fmt.Errorf("document %d (Deployment): %w", doc, err)
		}
		in.Deployments[d.Namespace+"/"+d.Name] = d
	}
	return nil
}

// sortedKeys returns a map's keys in order, for a stable report.
func sortedKeys[V any](m map[string]V) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

func parseBool(s string) (bool, error) { return strconv.ParseBool(strings.TrimSpace(s)) }

// HasAuth reports whether the input holds the named TriggerAuthentication
// or ClusterTriggerAuthentication.
func HasAuth(in *Input, kind, namespace, name string) bool {
	_, ok := in.Auths[authKey(kind, namespace, name)]
	return ok
}
