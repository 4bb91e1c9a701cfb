package v1alpha1

// SecretKeyRef names one key of a Secret in the object's namespace.
type SecretKeyRef struct {
	// name is the Secret's name.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Name string `json:"name"`

	// key is the key inside the Secret's data.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Key string `json:"key"`
}

// LocalObjectRef names an object in the same namespace.
type LocalObjectRef struct {
	// name is the referenced object's name.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Name string `json:"name"`
}

// TLSConfig configures TLS to the Kafka brokers. Key material is read from
// Secrets and mounted into handler pods as files; it is never copied into a
// Deployment.
// +kubebuilder:validation:XValidation:rule="has(self.certSecretRef) == has(self.keySecretRef)",message="tls.certSecretRef and tls.keySecretRef must be set together for client authentication"
type TLSConfig struct {
	// caSecretRef selects the PEM CA bundle that signs the brokers'
	// certificates. When absent the system roots are used.
	// +optional
	CASecretRef *SecretKeyRef `json:"caSecretRef,omitempty"`

	// certSecretRef selects the PEM client certificate for mutual TLS.
	// +optional
	CertSecretRef *SecretKeyRef `json:"certSecretRef,omitempty"`

	// keySecretRef selects the PEM private key of the client certificate.
	// +optional
	KeySecretRef *SecretKeyRef `json:"keySecretRef,omitempty"`

	// insecureSkipVerify disables verification of the brokers' certificates.
	// Use it only for testing.
	// +optional
	InsecureSkipVerify bool `json:"insecureSkipVerify,omitempty"`
}

// SASLMechanism is a SASL mechanism supported by lagscale.
// +kubebuilder:validation:Enum=PLAIN;SCRAM-SHA-256;SCRAM-SHA-512
type SASLMechanism string

// Supported SASL mechanisms.
const (
	SASLPlain       SASLMechanism = "PLAIN"
	SASLScramSHA256 SASLMechanism = "SCRAM-SHA-256"
	SASLScramSHA512 SASLMechanism = "SCRAM-SHA-512"
)

// SASLConfig configures SASL authentication to the Kafka brokers.
type SASLConfig struct {
	// mechanism is the SASL mechanism: PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512.
	// +required
	Mechanism SASLMechanism `json:"mechanism"`

	// secretRef names a Secret in the same namespace holding the keys
	// `username` and `password`.
	// +required
	SecretRef LocalObjectRef `json:"secretRef"`
}

// Connection settings shared by KafkaCluster and inline EventConsumer
// configuration.

// KafkaConnection is how an EventConsumer reaches Kafka: either inline
// bootstrap servers or a reference to a KafkaCluster, never both.
// +kubebuilder:validation:XValidation:rule="has(self.bootstrapServers) != has(self.clusterRef)",message="set exactly one of kafka.bootstrapServers or kafka.clusterRef"
// +kubebuilder:validation:XValidation:rule="!has(self.clusterRef) || (!has(self.tls) && !has(self.sasl))",message="kafka.tls and kafka.sasl belong on the referenced KafkaCluster when kafka.clusterRef is set"
type KafkaConnection struct {
	// bootstrapServers lists the brokers to bootstrap from, as host:port.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=32
	// +kubebuilder:validation:items:MaxLength=261
	// +kubebuilder:validation:items:Pattern=`^[A-Za-z0-9.\-\[\]:]+:[0-9]{1,5}$`
	BootstrapServers []string `json:"bootstrapServers,omitempty"`

	// clusterRef names a KafkaCluster in the same namespace whose connection
	// (and client) this consumer shares.
	// +optional
	ClusterRef *LocalObjectRef `json:"clusterRef,omitempty"`

	// tls enables TLS to the brokers.
	// +optional
	TLS *TLSConfig `json:"tls,omitempty"`

	// sasl enables SASL authentication.
	// +optional
	SASL *SASLConfig `json:"sasl,omitempty"`
}
