package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// KafkaClusterSpec is how to reach a Kafka cluster.
type KafkaClusterSpec struct {
	// bootstrapServers lists the brokers to bootstrap from, as host:port.
	// +required
	// +listType=atomic
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=32
	// +kubebuilder:validation:items:MaxLength=261
	// +kubebuilder:validation:items:Pattern=`^[A-Za-z0-9.\-\[\]:]+:[0-9]{1,5}$`
	BootstrapServers []string `json:"bootstrapServers"`

	// tls enables TLS to the brokers.
	// +optional
	TLS *TLSConfig `json:"tls,omitempty"`

	// sasl enables SASL authentication.
	// +optional
	SASL *SASLConfig `json:"sasl,omitempty"`
}

// KafkaClusterStatus is what lagscale last saw of the cluster.
type KafkaClusterStatus struct {
	// observedGeneration is the generation last reconciled successfully.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// brokers are the brokers the cluster's metadata lists, as host:port.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=256
	// +kubebuilder:validation:items:MaxLength=261
	Brokers []string `json:"brokers,omitempty"`

	// consumers is the number of EventConsumers that use this cluster.
	// +optional
	Consumers int32 `json:"consumers"`

	// conditions are Ready and Stalled.
	// +optional
	// +listType=map
	// +listMapKey=type
	// +kubebuilder:validation:MaxItems=16
	Conditions []metav1.Condition `json:"conditions,omitempty"`
}

// KafkaCluster names a Kafka connection that EventConsumers in the same
// namespace share: one client and one poll loop serve all of them.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=kc,categories=lagscale
// +kubebuilder:printcolumn:name="Servers",type=string,JSONPath=`.spec.bootstrapServers`
// +kubebuilder:printcolumn:name="Consumers",type=integer,JSONPath=`.status.consumers`
// +kubebuilder:printcolumn:name="Status",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].reason`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type KafkaCluster struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// spec is the desired state.
	// +required
	Spec KafkaClusterSpec `json:"spec"`

	// status is the observed state.
	// +optional
	Status KafkaClusterStatus `json:"status,omitempty"`
}

// KafkaClusterList is a list of KafkaClusters.
//
// +kubebuilder:object:root=true
type KafkaClusterList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []KafkaCluster `json:"items"`
}
