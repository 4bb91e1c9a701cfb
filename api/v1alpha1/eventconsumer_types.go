package v1alpha1

import (
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// ScalingPolicy selects how desired replicas are computed from lag.
// +kubebuilder:validation:Enum=TimeLag;LagThreshold
type ScalingPolicy string

const (
	// PolicyTimeLag keeps the group's time lag (the age of the oldest
	// unconsumed record) under maxLagSeconds with the fewest replicas.
	PolicyTimeLag ScalingPolicy = "TimeLag"

	// PolicyLagThreshold reproduces KEDA's Kafka scaler:
	// ceil(total lag / lagThreshold), capped at the partition count.
	PolicyLagThreshold ScalingPolicy = "LagThreshold"
)

// OffsetResetPolicy says where a group with no committed offset on a
// partition starts, and so how much lag such a partition has.
// +kubebuilder:validation:Enum=latest;earliest
type OffsetResetPolicy string

const (
	// OffsetResetLatest starts at the end of the log: no lag.
	OffsetResetLatest OffsetResetPolicy = "latest"
	// OffsetResetEarliest starts at the log start offset: every retained
	// record is lag.
	OffsetResetEarliest OffsetResetPolicy = "earliest"
)

// GroupType is the Kafka group protocol the handlers use to share the
// topics' records.
// +kubebuilder:validation:Enum=Classic;Consumer;Share;Streams
type GroupType string

const (
	// GroupTypeClassic is the classic consumer group protocol
	// (JoinGroup/SyncGroup, client-side assignment).
	GroupTypeClassic GroupType = "Classic"
	// GroupTypeConsumer is the KIP-848 consumer group protocol: the broker
	// assigns partitions and rebalances member by member.
	GroupTypeConsumer GroupType = "Consumer"
	// GroupTypeShare is a KIP-932 share group: members share partitions and
	// acknowledge records one by one, so there can be more members than
	// partitions.
	GroupTypeShare GroupType = "Share"
	// GroupTypeStreams is a KIP-1071 streams group (Kafka Streams with
	// group.protocol=streams): the broker assigns tasks, and the topics
	// come from the topology the application registered.
	GroupTypeStreams GroupType = "Streams"
)

// DefaultGroupType is spec.groupType when it is not set; it must match the
// +kubebuilder:default marker on EventConsumerSpec.GroupType.
const DefaultGroupType = GroupTypeClassic

// HandlerSpec describes the handler container when no full pod template is
// needed.
type HandlerSpec struct {
	// image is the handler's container image. Required unless spec.template
	// is given.
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=512
	Image string `json:"image,omitempty"`

	// command overrides the image's entrypoint.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=64
	// +kubebuilder:validation:items:MaxLength=4096
	Command []string `json:"command,omitempty"`

	// args are the arguments to the entrypoint.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=64
	// +kubebuilder:validation:items:MaxLength=4096
	Args []string `json:"args,omitempty"`

	// env adds environment variables to the handler container, after the
	// injected Kafka contract. The contract's own variables (KAFKA_TOPICS,
	// KAFKA_CONSUMER_GROUP and the others lagscale injects) cannot be set
	// here: the lag engine reads the group and topics from the spec, so a
	// handler told otherwise would consume a group nobody measures.
	// +optional
	// +listType=map
	// +listMapKey=name
	// +kubebuilder:validation:MaxItems=128
	// One rule per contract variable, so that the message names it (a
	// messageExpression picking the name out of the list costs more than
	// the API server allows).
	// +kubebuilder:validation:XValidation:rule="!self.exists(e, e.name == 'KAFKA_BOOTSTRAP_SERVERS')",message="handler.env must not set KAFKA_BOOTSTRAP_SERVERS: lagscale injects it from the spec (the handler contract); change the spec field it comes from instead"
	// +kubebuilder:validation:XValidation:rule="!self.exists(e, e.name == 'KAFKA_TOPICS')",message="handler.env must not set KAFKA_TOPICS: lagscale injects it from the spec (the handler contract); change the spec field it comes from instead"
	// +kubebuilder:validation:XValidation:rule="!self.exists(e, e.name == 'KAFKA_CONSUMER_GROUP')",message="handler.env must not set KAFKA_CONSUMER_GROUP: lagscale injects it from the spec (the handler contract); change the spec field it comes from instead"
	// +kubebuilder:validation:XValidation:rule="!self.exists(e, e.name == 'KAFKA_SECURITY_PROTOCOL')",message="handler.env must not set KAFKA_SECURITY_PROTOCOL: lagscale injects it from the spec (the handler contract); change the spec field it comes from instead"
	// +kubebuilder:validation:XValidation:rule="!self.exists(e, e.name == 'KAFKA_SASL_MECHANISM')",message="handler.env must not set KAFKA_SASL_MECHANISM: lagscale injects it from the spec (the handler contract); change the spec field it comes from instead"
	// +kubebuilder:validation:XValidation:rule="!self.exists(e, e.name == 'KAFKA_SASL_USERNAME')",message="handler.env must not set KAFKA_SASL_USERNAME: lagscale injects it from the spec (the handler contract); change the spec field it comes from instead"
	// +kubebuilder:validation:XValidation:rule="!self.exists(e, e.name == 'KAFKA_SASL_PASSWORD')",message="handler.env must not set KAFKA_SASL_PASSWORD: lagscale injects it from the spec (the handler contract); change the spec field it comes from instead"
	// +kubebuilder:validation:XValidation:rule="!self.exists(e, e.name == 'KAFKA_TLS_CA_FILE')",message="handler.env must not set KAFKA_TLS_CA_FILE: lagscale injects it from the spec (the handler contract); change the spec field it comes from instead"
	// +kubebuilder:validation:XValidation:rule="!self.exists(e, e.name == 'KAFKA_TLS_CERT_FILE')",message="handler.env must not set KAFKA_TLS_CERT_FILE: lagscale injects it from the spec (the handler contract); change the spec field it comes from instead"
	// +kubebuilder:validation:XValidation:rule="!self.exists(e, e.name == 'KAFKA_TLS_KEY_FILE')",message="handler.env must not set KAFKA_TLS_KEY_FILE: lagscale injects it from the spec (the handler contract); change the spec field it comes from instead"
	// +kubebuilder:validation:XValidation:rule="!self.exists(e, e.name == 'KAFKA_TLS_INSECURE_SKIP_VERIFY')",message="handler.env must not set KAFKA_TLS_INSECURE_SKIP_VERIFY: lagscale injects it from the spec (the handler contract); change the spec field it comes from instead"
	// +kubebuilder:validation:XValidation:rule="!self.exists(e, e.name == 'KAFKA_AUTO_OFFSET_RESET')",message="handler.env must not set KAFKA_AUTO_OFFSET_RESET: lagscale injects it from the spec (the handler contract); change the spec field it comes from instead"
	// +kubebuilder:validation:XValidation:rule="!self.exists(e, e.name == 'KAFKA_GROUP_TYPE')",message="handler.env must not set KAFKA_GROUP_TYPE: lagscale injects it from the spec (the handler contract); change the spec field it comes from instead"
	// +kubebuilder:validation:XValidation:rule="!self.exists(e, e.name == 'LAGSCALE_CONSUMER')",message="handler.env must not set LAGSCALE_CONSUMER: lagscale injects it from the spec (the handler contract); change the spec field it comes from instead"
	// +kubebuilder:validation:XValidation:rule="!self.exists(e, e.name == 'LAGSCALE_DEAD_LETTER_TOPIC')",message="handler.env must not set LAGSCALE_DEAD_LETTER_TOPIC: lagscale injects it from the spec (the handler contract); change the spec field it comes from instead"
	Env []corev1.EnvVar `json:"env,omitempty"`

	// resources are the handler container's compute resources.
	// +optional
	Resources corev1.ResourceRequirements `json:"resources,omitempty"`
}

// Defaults of ScalingSpec. Each is the value of the field's default
// marker (kubebuilder:default), written once here so that the controller,
// the simulator and the docs use the number the API server fills in; a
// test checks the generated CRD against them.
const (
	// DefaultMinReplicas is minReplicas' default.
	DefaultMinReplicas int32 = 1
	// DefaultPolicy is policy's default.
	DefaultPolicy = PolicyTimeLag
	// DefaultMaxLagSeconds is maxLagSeconds' default.
	DefaultMaxLagSeconds int32 = 30
	// DefaultLagThreshold is lagThreshold's default.
	DefaultLagThreshold int64 = 1000
	// DefaultActivationLag is activationLag's default.
	DefaultActivationLag int64 = 0
	// DefaultScaleDownStabilizationSeconds is the window the scaler uses
	// when scaleDownStabilizationSeconds is unset. It is not a CRD default:
	// an unset window is the scaler's to shorten once a burst's replicas
	// cost more to keep than to add again, a window written in the
	// manifest never is.
	DefaultScaleDownStabilizationSeconds int32 = 120
	// DefaultBurstMemorySeconds is burstMemorySeconds' default.
	DefaultBurstMemorySeconds int32 = 21600
	// DefaultPollIntervalSeconds is pollIntervalSeconds' default.
	DefaultPollIntervalSeconds int32 = 5
	// DefaultOffsetResetPolicy is offsetResetPolicy's default.
	DefaultOffsetResetPolicy = OffsetResetLatest
)

// ScalingSpec configures lag-driven autoscaling.
// +kubebuilder:validation:XValidation:rule="!has(self.maxReplicas) || !has(self.minReplicas) || self.minReplicas <= self.maxReplicas",message="minReplicas must not exceed maxReplicas"
type ScalingSpec struct {
	// minReplicas is the fewest replicas. 0 allows scale to zero when the
	// group has had no lag and no inflow through the stabilization window.
	// +optional
	// +kubebuilder:default=1
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=10000
	MinReplicas *int32 `json:"minReplicas,omitempty"`

	// maxReplicas is the most replicas. When absent it is the partition
	// count of the topics, the most consumers a group can use. Required for
	// groupType Share, whose members are not bounded by the partitions.
	// +optional
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=10000
	MaxReplicas *int32 `json:"maxReplicas,omitempty"`

	// policy is TimeLag (default) or LagThreshold.
	// +optional
	// +kubebuilder:default=TimeLag
	Policy ScalingPolicy `json:"policy,omitempty"`

	// maxLagSeconds is the TimeLag policy's target: the oldest unconsumed
	// record should be younger than this.
	// +optional
	// +kubebuilder:default=30
	// +kubebuilder:validation:XValidation:rule="self > 0",message="maxLagSeconds must be greater than 0"
	// +kubebuilder:validation:Maximum=86400
	MaxLagSeconds *int32 `json:"maxLagSeconds,omitempty"`

	// lagThreshold is the LagThreshold policy's records of lag per replica.
	// +optional
	// +kubebuilder:default=1000
	// +kubebuilder:validation:XValidation:rule="self > 0",message="lagThreshold must be greater than 0"
	LagThreshold *int64 `json:"lagThreshold,omitempty"`

	// activationLag is the total lag above which a consumer scaled to zero
	// wakes up.
	// +optional
	// +kubebuilder:default=0
	// +kubebuilder:validation:Minimum=0
	ActivationLag *int64 `json:"activationLag,omitempty"`

	// throughputPerReplica is a hint of one replica's capacity in records per
	// second, used until lagscale has measured it.
	// +optional
	// +kubebuilder:validation:Minimum=1
	ThroughputPerReplica *int64 `json:"throughputPerReplica,omitempty"`

	// scaleDownStabilizationSeconds is how long recommendations must stay
	// lower before replicas are removed. A value set here is a floor that
	// no part of the autoscaler cuts short. When unset the scaler chooses:
	// LagThreshold waits 120 seconds; TimeLag removes replicas once its
	// plan, which prices each change at its rebalance, has recommended
	// fewer for one minimum scale interval (30 seconds) and the replicas
	// saved pay for the change.
	// +optional
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=3600
	ScaleDownStabilizationSeconds *int32 `json:"scaleDownStabilizationSeconds,omitempty"`

	// burstMemorySeconds is how long the TimeLag policy remembers a burst.
	// Bursts seen within it make the load's pattern: three or more evenly
	// spaced, 1 minute to 2 hours apart, are a period, and the next burst
	// is provisioned one scale-up delay before it is due. A period whose
	// burst does not come is forgotten. 0 turns the pattern off: every
	// burst is then met as it comes.
	// +optional
	// +kubebuilder:default=21600
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=86400
	BurstMemorySeconds *int32 `json:"burstMemorySeconds,omitempty"`

	// pollIntervalSeconds is how often the group's lag is read, 1 to 300.
	// +optional
	// +kubebuilder:default=5
	// +kubebuilder:validation:XValidation:rule="self >= 1 && self <= 300",message="pollIntervalSeconds must be between 1 and 300"
	PollIntervalSeconds *int32 `json:"pollIntervalSeconds,omitempty"`

	// allowIdleConsumers allows more replicas than partitions; the extra
	// consumers get no partition.
	// +optional
	// +kubebuilder:default=false
	AllowIdleConsumers bool `json:"allowIdleConsumers,omitempty"`

	// offsetResetPolicy is the handler's auto.offset.reset, which also
	// decides how much lag a partition without a committed offset has.
	// +optional
	// +kubebuilder:default=latest
	OffsetResetPolicy OffsetResetPolicy `json:"offsetResetPolicy,omitempty"`

	// paused freezes the replica count where it is.
	// +optional
	// +kubebuilder:default=false
	Paused bool `json:"paused,omitempty"`
}

// ScaleTargetRef names a workload in the EventConsumer's namespace that
// lagscale scales through its scale subresource, without creating, owning
// or otherwise changing it.
type ScaleTargetRef struct {
	// apiVersion is the target's API group and version, such as apps/v1 or
	// argoproj.io/v1alpha1.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=317
	// +kubebuilder:validation:XValidation:rule="self.matches('^([a-z0-9]([-a-z0-9]*[a-z0-9])?([.][a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?v[0-9]+((alpha|beta)[0-9]+)?$')",message="scaleTargetRef.apiVersion must be group/version (apps/v1, argoproj.io/v1alpha1) or a core version (v1)"
	APIVersion string `json:"apiVersion"`

	// kind is the target's kind, such as Deployment, StatefulSet or Rollout.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:Pattern=`^[A-Z][A-Za-z0-9]*$`
	Kind string `json:"kind"`

	// name is the target's name in the EventConsumer's namespace.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Name string `json:"name"`
}

// EventConsumerSpec is the desired state of an EventConsumer.
// +kubebuilder:validation:XValidation:rule="has(self.scaleTargetRef) || has(self.template) || (has(self.handler) && has(self.handler.image))",message="set spec.handler.image, or give spec.template with the handler container, or point spec.scaleTargetRef at a workload you deploy yourself"
// +kubebuilder:validation:XValidation:rule="!has(self.scaleTargetRef) || (!has(self.handler) && !has(self.template))",message="spec.scaleTargetRef cannot be combined with spec.handler or spec.template: either lagscale runs the handler (handler, template) or it scales a workload you deploy (scaleTargetRef); remove one of them"
// +kubebuilder:validation:XValidation:rule="!has(self.scaleTargetRef) || !has(self.deadLetterTopic)",message="spec.deadLetterTopic cannot be set beside spec.scaleTargetRef: lagscale injects nothing into a workload it only scales, so configure the dead-letter topic in the workload itself and remove spec.deadLetterTopic"
// +kubebuilder:validation:XValidation:rule="has(oldSelf.scaleTargetRef) == has(self.scaleTargetRef)",message="an EventConsumer cannot switch between spec.scaleTargetRef and spec.handler/spec.template: the Deployment lagscale owns would be left behind or a workload taken over; create a new EventConsumer instead"
// +kubebuilder:validation:XValidation:rule="!has(self.groupType) || self.groupType != 'Share' || has(self.scaling.maxReplicas)",message="set scaling.maxReplicas for groupType Share: a share group can use more members than partitions, so the partition count does not bound it"
// +kubebuilder:validation:XValidation:rule="(has(oldSelf.groupType) ? oldSelf.groupType : 'Classic') == 'Share' || (has(self.groupType) ? self.groupType : 'Classic') != 'Share'",message="groupType cannot change to Share: a share group is another group than the consumer group, create a new EventConsumer with groupType Share"
// +kubebuilder:validation:XValidation:rule="(has(oldSelf.groupType) ? oldSelf.groupType : 'Classic') != 'Share' || (has(self.groupType) ? self.groupType : 'Classic') == 'Share'",message="groupType cannot change from Share: a share group is another group than a consumer group, create a new EventConsumer for the Classic or Consumer group"
// +kubebuilder:validation:XValidation:rule="(has(oldSelf.groupType) ? oldSelf.groupType : 'Classic') == 'Streams' || (has(self.groupType) ? self.groupType : 'Classic') != 'Streams'",message="groupType cannot change to Streams: a streams group is another group than a consumer or share group, create a new EventConsumer with groupType Streams"
// +kubebuilder:validation:XValidation:rule="(has(oldSelf.groupType) ? oldSelf.groupType : 'Classic') != 'Streams' || (has(self.groupType) ? self.groupType : 'Classic') == 'Streams'",message="groupType cannot change from Streams: a streams group is another group than a consumer or share group, create a new EventConsumer for the other group type"
// +kubebuilder:validation:XValidation:rule="(has(self.groupType) && self.groupType == 'Streams') || has(self.topics)",message="set spec.topics: only groupType Streams reads its topics from the topology the broker reports"
// +kubebuilder:validation:XValidation:rule="!has(self.groupType) || self.groupType != 'Streams' || has(self.topics) || !has(self.scaling.minReplicas) || self.scaling.minReplicas >= 1",message="set scaling.minReplicas to 1 or more, or set spec.topics: a streams group with no member has no topology to read, so without spec.topics nothing would wake it from zero"
type EventConsumerSpec struct {
	// topics are the Kafka topics the handler consumes. Required unless
	// groupType is Streams, whose source and repartition topics are read
	// from the topology the broker reports; given for Streams, they must
	// be the topology's source topics (a mismatch makes Stalled True with
	// reason TopologyMismatch), and they are what wakes a group scaled to
	// zero.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=16
	// +kubebuilder:validation:items:MaxLength=249
	// +kubebuilder:validation:XValidation:rule="self.all(t, t.matches('^[a-zA-Z0-9._-]{1,249}$') && t != '.' && t != '..')",message="each topic must be a valid Kafka topic name: 1 to 249 letters, digits, '.', '_' or '-', and not '.' or '..'"
	Topics []string `json:"topics,omitempty"`

	// consumerGroup is the Kafka consumer group. It cannot change after
	// creation, because committed offsets belong to the group.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=249
	// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="consumerGroup is immutable: create a new EventConsumer to use another group"
	ConsumerGroup string `json:"consumerGroup"`

	// groupType is the group protocol of the handlers: Classic (the
	// default), Consumer (KIP-848, the broker assigns partitions; Kafka 4.0+)
	// or Share (KIP-932 share group, records acknowledged one by one, more
	// members than partitions possible; Kafka 4.2+) or Streams (KIP-1071,
	// Kafka Streams with group.protocol=streams; the broker assigns tasks;
	// Kafka 4.2+, the topology read with StreamsGroupDescribe). Classic and
	// Consumer can be switched both ways, since Kafka converts such a group
	// online; share and streams groups are other groups, so a change to or
	// from Share or Streams is refused.
	// +optional
	// +kubebuilder:default=Classic
	GroupType GroupType `json:"groupType,omitempty"`

	// kafka is how to reach the Kafka cluster.
	// +required
	Kafka KafkaConnection `json:"kafka"`

	// handler is the handler container.
	// +optional
	Handler *HandlerSpec `json:"handler,omitempty"`

	// template is a full pod template for everything handler does not
	// cover. The container named "handler", or else the first container,
	// receives the injected Kafka environment; its env may not set the
	// contract's variables, as for handler.env.
	// +optional
	// +kubebuilder:validation:XValidation:rule="!has(self.spec) || !has(self.spec.containers) || size(self.spec.containers) == 0 || (self.spec.containers.exists(c, c.name == 'handler') ? !self.spec.containers.exists(c, c.name == 'handler' && has(c.env) && c.env.exists(e, e.name == 'KAFKA_BOOTSTRAP_SERVERS')) : !(has(self.spec.containers[0].env) && self.spec.containers[0].env.exists(e, e.name == 'KAFKA_BOOTSTRAP_SERVERS')))",message="the handler container of spec.template must not set KAFKA_BOOTSTRAP_SERVERS in env: lagscale injects it from the spec (the handler contract); change the spec field it comes from instead"
	// +kubebuilder:validation:XValidation:rule="!has(self.spec) || !has(self.spec.containers) || size(self.spec.containers) == 0 || (self.spec.containers.exists(c, c.name == 'handler') ? !self.spec.containers.exists(c, c.name == 'handler' && has(c.env) && c.env.exists(e, e.name == 'KAFKA_TOPICS')) : !(has(self.spec.containers[0].env) && self.spec.containers[0].env.exists(e, e.name == 'KAFKA_TOPICS')))",message="the handler container of spec.template must not set KAFKA_TOPICS in env: lagscale injects it from the spec (the handler contract); change the spec field it comes from instead"
	// +kubebuilder:validation:XValidation:rule="!has(self.spec) || !has(self.spec.containers) || size(self.spec.containers) == 0 || (self.spec.containers.exists(c, c.name == 'handler') ? !self.spec.containers.exists(c, c.name == 'handler' && has(c.env) && c.env.exists(e, e.name == 'KAFKA_CONSUMER_GROUP')) : !(has(self.spec.containers[0].env) && self.spec.containers[0].env.exists(e, e.name == 'KAFKA_CONSUMER_GROUP')))",message="the handler container of spec.template must not set KAFKA_CONSUMER_GROUP in env: lagscale injects it from the spec (the handler contract); change the spec field it comes from instead"
	// +kubebuilder:validation:XValidation:rule="!has(self.spec) || !has(self.spec.containers) || size(self.spec.containers) == 0 || (self.spec.containers.exists(c, c.name == 'handler') ? !self.spec.containers.exists(c, c.name == 'handler' && has(c.env) && c.env.exists(e, e.name == 'KAFKA_SECURITY_PROTOCOL')) : !(has(self.spec.containers[0].env) && self.spec.containers[0].env.exists(e, e.name == 'KAFKA_SECURITY_PROTOCOL')))",message="the handler container of spec.template must not set KAFKA_SECURITY_PROTOCOL in env: lagscale injects it from the spec (the handler contract); change the spec field it comes from instead"
	// +kubebuilder:validation:XValidation:rule="!has(self.spec) || !has(self.spec.containers) || size(self.spec.containers) == 0 || (self.spec.containers.exists(c, c.name == 'handler') ? !self.spec.containers.exists(c, c.name == 'handler' && has(c.env) && c.env.exists(e, e.name == 'KAFKA_SASL_MECHANISM')) : !(has(self.spec.containers[0].env) && self.spec.containers[0].env.exists(e, e.name == 'KAFKA_SASL_MECHANISM')))",message="the handler container of spec.template must not set KAFKA_SASL_MECHANISM in env: lagscale injects it from the spec (the handler contract); change the spec field it comes from instead"
	// +kubebuilder:validation:XValidation:rule="!has(self.spec) || !has(self.spec.containers) || size(self.spec.containers) == 0 || (self.spec.containers.exists(c, c.name == 'handler') ? !self.spec.containers.exists(c, c.name == 'handler' && has(c.env) && c.env.exists(e, e.name == 'KAFKA_SASL_USERNAME')) : !(has(self.spec.containers[0].env) && self.spec.containers[0].env.exists(e, e.name == 'KAFKA_SASL_USERNAME')))",message="the handler container of spec.template must not set KAFKA_SASL_USERNAME in env: lagscale injects it from the spec (the handler contract); change the spec field it comes from instead"
	// +kubebuilder:validation:XValidation:rule="!has(self.spec) || !has(self.spec.containers) || size(self.spec.containers) == 0 || (self.spec.containers.exists(c, c.name == 'handler') ? !self.spec.containers.exists(c, c.name == 'handler' && has(c.env) && c.env.exists(e, e.name == 'KAFKA_SASL_PASSWORD')) : !(has(self.spec.containers[0].env) && self.spec.containers[0].env.exists(e, e.name == 'KAFKA_SASL_PASSWORD')))",message="the handler container of spec.template must not set KAFKA_SASL_PASSWORD in env: lagscale injects it from the spec (the handler contract); change the spec field it comes from instead"
	// +kubebuilder:validation:XValidation:rule="!has(self.spec) || !has(self.spec.containers) || size(self.spec.containers) == 0 || (self.spec.containers.exists(c, c.name == 'handler') ? !self.spec.containers.exists(c, c.name == 'handler' && has(c.env) && c.env.exists(e, e.name == 'KAFKA_TLS_CA_FILE')) : !(has(self.spec.containers[0].env) && self.spec.containers[0].env.exists(e, e.name == 'KAFKA_TLS_CA_FILE')))",message="the handler container of spec.template must not set KAFKA_TLS_CA_FILE in env: lagscale injects it from the spec (the handler contract); change the spec field it comes from instead"
	// +kubebuilder:validation:XValidation:rule="!has(self.spec) || !has(self.spec.containers) || size(self.spec.containers) == 0 || (self.spec.containers.exists(c, c.name == 'handler') ? !self.spec.containers.exists(c, c.name == 'handler' && has(c.env) && c.env.exists(e, e.name == 'KAFKA_TLS_CERT_FILE')) : !(has(self.spec.containers[0].env) && self.spec.containers[0].env.exists(e, e.name == 'KAFKA_TLS_CERT_FILE')))",message="the handler container of spec.template must not set KAFKA_TLS_CERT_FILE in env: lagscale injects it from the spec (the handler contract); change the spec field it comes from instead"
	// +kubebuilder:validation:XValidation:rule="!has(self.spec) || !has(self.spec.containers) || size(self.spec.containers) == 0 || (self.spec.containers.exists(c, c.name == 'handler') ? !self.spec.containers.exists(c, c.name == 'handler' && has(c.env) && c.env.exists(e, e.name == 'KAFKA_TLS_KEY_FILE')) : !(has(self.spec.containers[0].env) && self.spec.containers[0].env.exists(e, e.name == 'KAFKA_TLS_KEY_FILE')))",message="the handler container of spec.template must not set KAFKA_TLS_KEY_FILE in env: lagscale injects it from the spec (the handler contract); change the spec field it comes from instead"
	// +kubebuilder:validation:XValidation:rule="!has(self.spec) || !has(self.spec.containers) || size(self.spec.containers) == 0 || (self.spec.containers.exists(c, c.name == 'handler') ? !self.spec.containers.exists(c, c.name == 'handler' && has(c.env) && c.env.exists(e, e.name == 'KAFKA_TLS_INSECURE_SKIP_VERIFY')) : !(has(self.spec.containers[0].env) && self.spec.containers[0].env.exists(e, e.name == 'KAFKA_TLS_INSECURE_SKIP_VERIFY')))",message="the handler container of spec.template must not set KAFKA_TLS_INSECURE_SKIP_VERIFY in env: lagscale injects it from the spec (the handler contract); change the spec field it comes from instead"
	// +kubebuilder:validation:XValidation:rule="!has(self.spec) || !has(self.spec.containers) || size(self.spec.containers) == 0 || (self.spec.containers.exists(c, c.name == 'handler') ? !self.spec.containers.exists(c, c.name == 'handler' && has(c.env) && c.env.exists(e, e.name == 'KAFKA_AUTO_OFFSET_RESET')) : !(has(self.spec.containers[0].env) && self.spec.containers[0].env.exists(e, e.name == 'KAFKA_AUTO_OFFSET_RESET')))",message="the handler container of spec.template must not set KAFKA_AUTO_OFFSET_RESET in env: lagscale injects it from the spec (the handler contract); change the spec field it comes from instead"
	// +kubebuilder:validation:XValidation:rule="!has(self.spec) || !has(self.spec.containers) || size(self.spec.containers) == 0 || (self.spec.containers.exists(c, c.name == 'handler') ? !self.spec.containers.exists(c, c.name == 'handler' && has(c.env) && c.env.exists(e, e.name == 'KAFKA_GROUP_TYPE')) : !(has(self.spec.containers[0].env) && self.spec.containers[0].env.exists(e, e.name == 'KAFKA_GROUP_TYPE')))",message="the handler container of spec.template must not set KAFKA_GROUP_TYPE in env: lagscale injects it from the spec (the handler contract); change the spec field it comes from instead"
	// +kubebuilder:validation:XValidation:rule="!has(self.spec) || !has(self.spec.containers) || size(self.spec.containers) == 0 || (self.spec.containers.exists(c, c.name == 'handler') ? !self.spec.containers.exists(c, c.name == 'handler' && has(c.env) && c.env.exists(e, e.name == 'LAGSCALE_CONSUMER')) : !(has(self.spec.containers[0].env) && self.spec.containers[0].env.exists(e, e.name == 'LAGSCALE_CONSUMER')))",message="the handler container of spec.template must not set LAGSCALE_CONSUMER in env: lagscale injects it from the spec (the handler contract); change the spec field it comes from instead"
	// +kubebuilder:validation:XValidation:rule="!has(self.spec) || !has(self.spec.containers) || size(self.spec.containers) == 0 || (self.spec.containers.exists(c, c.name == 'handler') ? !self.spec.containers.exists(c, c.name == 'handler' && has(c.env) && c.env.exists(e, e.name == 'LAGSCALE_DEAD_LETTER_TOPIC')) : !(has(self.spec.containers[0].env) && self.spec.containers[0].env.exists(e, e.name == 'LAGSCALE_DEAD_LETTER_TOPIC')))",message="the handler container of spec.template must not set LAGSCALE_DEAD_LETTER_TOPIC in env: lagscale injects it from the spec (the handler contract); change the spec field it comes from instead"
	Template *corev1.PodTemplateSpec `json:"template,omitempty"`

	// scaleTargetRef points at a workload the user deploys (a Deployment, a
	// StatefulSet, or any resource with a scale subresource, such as an Argo
	// Rollout), in the EventConsumer's namespace. lagscale then sets only
	// its replicas, through the scale subresource, and injects nothing: the
	// workload has its own configuration, so it must consume
	// spec.consumerGroup from spec.topics and stop cleanly on SIGTERM
	// (commit what it processed, leave the group). Exclusive with handler
	// and template; deadLetterTopic cannot be set beside it. Nothing else
	// may scale the target: an HorizontalPodAutoscaler on it (KEDA's
	// included) makes the EventConsumer Ready=False, reason
	// ScaleTargetConflict, and lagscale writes nothing until it is gone.
	// Deleting the EventConsumer leaves the workload at its replicas.
	// +optional
	ScaleTargetRef *ScaleTargetRef `json:"scaleTargetRef,omitempty"`

	// scaling configures lag-driven autoscaling.
	// +optional
	// +kubebuilder:default={}
	Scaling ScalingSpec `json:"scaling,omitempty"`

	// deadLetterTopic receives records the handler gives up on; passed to
	// the handler as LAGSCALE_DEAD_LETTER_TOPIC. Not with scaleTargetRef.
	// +optional
	// +kubebuilder:validation:MaxLength=249
	// +kubebuilder:validation:Pattern=`^[a-zA-Z0-9._-]{1,249}$`
	DeadLetterTopic string `json:"deadLetterTopic,omitempty"`
}

// PartitionLagStatus is one partition's lag.
type PartitionLagStatus struct {
	// topic is the partition's topic.
	// +required
	// +kubebuilder:validation:MaxLength=249
	Topic string `json:"topic"`
	// partition is the partition number.
	// +required
	Partition int32 `json:"partition"`
	// lag is endOffset minus committedOffset, in records.
	// +required
	Lag int64 `json:"lag"`
	// seconds is the age of the record at the committed offset.
	// +optional
	Seconds float64 `json:"seconds,omitempty"`
	// committedOffset is the group's committed offset, -1 when none.
	// +required
	CommittedOffset int64 `json:"committedOffset"`
	// endOffset is the partition's high watermark.
	// +required
	EndOffset int64 `json:"endOffset"`
	// health is OK, WARN, STALL, STOP or REWIND.
	// +optional
	// +kubebuilder:validation:MaxLength=16
	Health string `json:"health,omitempty"`
}

// UnreadableLag is a subscribed topic or partition whose lag could not be
// read.
type UnreadableLag struct {
	// topic is the topic.
	// +required
	// +kubebuilder:validation:MaxLength=249
	Topic string `json:"topic"`
	// partition is the partition; absent when the whole topic could not be
	// read.
	// +optional
	Partition *int32 `json:"partition,omitempty"`
	// error is what Kafka answered.
	// +required
	// +kubebuilder:validation:MaxLength=1024
	Error string `json:"error"`
}

// LagStatus is the consumer group's lag as last read from Kafka.
type LagStatus struct {
	// total is the sum of every partition's lag, in records.
	// +optional
	Total int64 `json:"total"`
	// seconds is the group's time lag: the age of the oldest unconsumed
	// record over all partitions.
	// +optional
	Seconds float64 `json:"seconds"`
	// productionRate is the inflow in records per second.
	// +optional
	ProductionRate float64 `json:"productionRate"`
	// consumptionRate is the group's commit progress in records per second.
	// +optional
	ConsumptionRate float64 `json:"consumptionRate"`
	// drainSeconds is the time to consume the backlog at the current net
	// drain rate; absent when the backlog is not shrinking.
	// +optional
	DrainSeconds *float64 `json:"drainSeconds,omitempty"`
	// groupState is the consumer group's state in Kafka.
	// +optional
	// +kubebuilder:validation:MaxLength=32
	GroupState string `json:"groupState,omitempty"`
	// members is the number of group members, for every group type.
	// +optional
	Members int32 `json:"members"`
	// groupType is the group's type as the broker reports it: Classic,
	// Consumer or Share; empty while the group does not exist.
	// +optional
	// +kubebuilder:validation:MaxLength=16
	GroupType string `json:"groupType,omitempty"`
	// groupEpoch is a consumer (KIP-848) or share group's epoch, which
	// moves with every change of membership or subscription.
	// +optional
	GroupEpoch *int32 `json:"groupEpoch,omitempty"`
	// assignmentEpoch is the epoch of the group's target assignment; it
	// trails groupEpoch while the broker computes a new assignment.
	// +optional
	AssignmentEpoch *int32 `json:"assignmentEpoch,omitempty"`
	// rebalancingMembers is the number of consumer-group members whose
	// epoch trails the group epoch: they have not yet taken their new
	// assignment.
	// +optional
	RebalancingMembers int32 `json:"rebalancingMembers,omitempty"`
	// stale is true when the last poll failed and these figures are older.
	// +optional
	Stale bool `json:"stale,omitempty"`
	// missingTopics lists subscribed topics that do not exist.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=16
	// +kubebuilder:validation:items:MaxLength=249
	MissingTopics []string `json:"missingTopics,omitempty"`
	// updated is when the figures were read from Kafka.
	// +optional
	Updated *metav1.Time `json:"updated,omitempty"`
	// unreadable lists the subscribed topics and partitions whose lag
	// could not be read, with the error. While it is not empty the figures
	// above cover only the readable partitions, replicas are not scaled
	// down and ScalingLimited is True with reason PartialLagData.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=16
	Unreadable []UnreadableLag `json:"unreadable,omitempty"`
	// timestampsUnreadable says why the records' timestamps at the group's
	// commits could not be read (the broker refused the Fetch, as it does
	// without a READ permission on the topic). seconds is then estimated
	// from when lagscale first saw the offsets, and reads low for a backlog
	// older than that. Empty when seconds is the records' own age.
	// +optional
	// +kubebuilder:validation:MaxLength=1024
	TimestampsUnreadable string `json:"timestampsUnreadable,omitempty"`
	// partitions are the 64 partitions with the largest time lag.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=64
	Partitions []PartitionLagStatus `json:"partitions,omitempty"`
	// streams is a streams group's topology and tasks, as the broker
	// reports them; absent for the other group types.
	// +optional
	Streams *StreamsLagStatus `json:"streams,omitempty"`

	// deadLetters is the growth of spec.deadLetterTopic, where records the
	// handler, or for a share group with a dead-letter queue (Kafka 4.4,
	// KIP-1191) the broker, gives up on land. More replicas do not help
	// such records, so this is a health signal and never scales.
	// +optional
	DeadLetters *DeadLetterStatus `json:"deadLetters,omitempty"`
}

// DeadLetterStatus is the size and growth of a dead-letter topic.
type DeadLetterStatus struct {
	// topic is the dead-letter topic.
	// +required
	// +kubebuilder:validation:MaxLength=249
	Topic string `json:"topic"`
	// missing is true when the topic does not exist.
	// +optional
	Missing bool `json:"missing,omitempty"`
	// records is the number of records retained in the topic.
	// +optional
	Records int64 `json:"records"`
	// ratePerSecond is how fast records arrive in the topic.
	// +optional
	RatePerSecond float64 `json:"ratePerSecond"`
}

// StreamsLagStatus is what StreamsGroupDescribe says about a KIP-1071
// streams group, and its lag split by the kind of topic.
type StreamsLagStatus struct {
	// inputLag is the lag, in records, on the topology's source topics:
	// work that came from outside the application.
	// +optional
	InputLag int64 `json:"inputLag"`
	// repartitionLag is the lag, in records, on the repartition topics:
	// work the application wrote for itself, which its own replicas must
	// also process.
	// +optional
	RepartitionLag int64 `json:"repartitionLag"`
	// inputTopics are the topology's source topics.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=64
	// +kubebuilder:validation:items:MaxLength=249
	InputTopics []string `json:"inputTopics,omitempty"`
	// repartitionTopics are the topology's repartition source topics.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=64
	// +kubebuilder:validation:items:MaxLength=249
	RepartitionTopics []string `json:"repartitionTopics,omitempty"`
	// subtopologies is the number of subtopologies.
	// +optional
	Subtopologies int32 `json:"subtopologies"`
	// activeTasks is the number of tasks, summed over the subtopologies
	// (each has one task per partition of its widest source topic): the
	// most stream threads the group can keep busy.
	// +optional
	ActiveTasks int32 `json:"activeTasks"`
	// assignedActiveTasks, standbyTasks and warmupTasks count the tasks
	// assigned over all members. Standby and warm-up tasks restore state
	// and consume nothing of the input, so they never count toward scale.
	// +optional
	AssignedActiveTasks int32 `json:"assignedActiveTasks"`
	// standbyTasks is the number of standby tasks assigned.
	// +optional
	StandbyTasks int32 `json:"standbyTasks"`
	// warmupTasks is the number of warm-up tasks assigned.
	// +optional
	WarmupTasks int32 `json:"warmupTasks"`
	// threadsPerInstance is the members (stream threads) per process, as
	// the describe reports them; 0 while the group has no member.
	// +optional
	ThreadsPerInstance int32 `json:"threadsPerInstance"`
	// topologyEpoch is the epoch of the topology the broker holds.
	// +optional
	TopologyEpoch int32 `json:"topologyEpoch"`
}

// LearnedStatus is the autoscaler's learned summary of a consumer.
type LearnedStatus struct {
	// capacityPerReplica is the records per second one replica consumes,
	// as measured while the group was saturated (or, before that, at
	// least what it was seen consuming); absent until measured. It is
	// what a scale-up is sized with.
	// +optional
	CapacityPerReplica *float64 `json:"capacityPerReplica,omitempty"`
	// scaleUpDelaySeconds is the measured time from a scale-up until its
	// pods are members of the group; absent until measured.
	// +optional
	ScaleUpDelaySeconds *float64 `json:"scaleUpDelaySeconds,omitempty"`
	// rebalancePauseSeconds is the measured time a membership change keeps
	// the group rebalancing, as its state shows at the polls; absent until
	// a rebalance has been seen.
	// +optional
	RebalancePauseSeconds *float64 `json:"rebalancePauseSeconds,omitempty"`
	// partitions is the partition count last seen on complete lag data.
	// While some topics cannot be read it bounds a scale-up.
	// +optional
	Partitions int32 `json:"partitions,omitempty"`
	// updated is when a figure last moved materially.
	// +optional
	Updated *metav1.Time `json:"updated,omitempty"`
}

// ScaleRecord describes the last change of replicas.
type ScaleRecord struct {
	// time is when replicas changed.
	// +required
	Time metav1.Time `json:"time"`
	// from is the replica count before.
	// +required
	From int32 `json:"from"`
	// to is the replica count after.
	// +required
	To int32 `json:"to"`
	// reason says what was measured and why.
	// +required
	// +kubebuilder:validation:MaxLength=1024
	Reason string `json:"reason"`
}

// EventConsumerStatus is the observed state of an EventConsumer.
type EventConsumerStatus struct {
	// observedGeneration is the generation last reconciled successfully.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// replicas is the workload's current replica count: the Deployment
	// lagscale runs, or spec.scaleTargetRef's, read from its scale
	// subresource.
	// +optional
	Replicas int32 `json:"replicas"`

	// readyReplicas is the workload's ready replica count. For a
	// scaleTargetRef that is neither a Deployment nor a StatefulSet, whose
	// scale subresource has no ready count, it is the group's members.
	// +optional
	ReadyReplicas int32 `json:"readyReplicas"`

	// desiredReplicas is the replica count lagscale decided.
	// +optional
	DesiredReplicas int32 `json:"desiredReplicas"`

	// readySummary is "readyReplicas/desiredReplicas", for kubectl get.
	// +optional
	// +kubebuilder:validation:MaxLength=32
	ReadySummary string `json:"readySummary,omitempty"`

	// selector is the label selector of the handler pods (for
	// scaleTargetRef, the one its scale subresource reports), for kubectl
	// (kubectl get pods -l) and dashboards. The CRD has no scale
	// subresource: lagscale itself sets the replica count.
	// +optional
	// +kubebuilder:validation:MaxLength=1024
	Selector string `json:"selector,omitempty"`

	// partitions is the partition count of the consumed topics.
	// +optional
	Partitions int32 `json:"partitions,omitempty"`

	// topics are the topics whose lag is read: spec.topics, or for
	// groupType Streams the source and repartition topics of the topology
	// the broker reports.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=64
	// +kubebuilder:validation:items:MaxLength=249
	Topics []string `json:"topics,omitempty"`

	// lag is the consumer group's lag.
	// +optional
	Lag *LagStatus `json:"lag,omitempty"`

	// lastScale is the last change of replicas made by lagscale. It is
	// recorded once the Deployment write that made it has succeeded.
	// +optional
	LastScale *ScaleRecord `json:"lastScale,omitempty"`

	// learned is what the autoscaler has measured about this consumer. It
	// is written when a figure moves by more than 10%, and an operator
	// that starts (a restart, a new leader) continues from it.
	// +optional
	Learned *LearnedStatus `json:"learned,omitempty"`

	// conditions are Ready, Reconciling, Stalled, KafkaReachable,
	// ScalingLimited and GroupTypeMatches.
	// +optional
	// +listType=map
	// +listMapKey=type
	// +kubebuilder:validation:MaxItems=16
	Conditions []metav1.Condition `json:"conditions,omitempty"`
}

// EventConsumer runs a Kafka consumer handler as a Deployment and scales it
// from the consumer group's lag.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=ec,categories=lagscale
// +kubebuilder:printcolumn:name="Group",type=string,JSONPath=`.spec.consumerGroup`
// +kubebuilder:printcolumn:name="Topics",type=string,JSONPath=`.status.topics`,priority=1
// +kubebuilder:printcolumn:name="Type",type=string,JSONPath=`.spec.groupType`,priority=1
// +kubebuilder:printcolumn:name="Replicas",type=string,JSONPath=`.status.readySummary`
// +kubebuilder:printcolumn:name="Lag",type=integer,JSONPath=`.status.lag.total`
// +kubebuilder:printcolumn:name="Lag(s)",type=number,JSONPath=`.status.lag.seconds`
// +kubebuilder:printcolumn:name="Status",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].reason`
// +kubebuilder:printcolumn:name="Capacity",type=number,JSONPath=`.status.learned.capacityPerReplica`,priority=1,description="Records per second one replica consumes, as measured"
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type EventConsumer struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// spec is the desired state.
	// +required
	Spec EventConsumerSpec `json:"spec"`

	// status is the observed state.
	// +optional
	Status EventConsumerStatus `json:"status,omitempty"`
}

// EventConsumerList is a list of EventConsumers.
//
// +kubebuilder:object:root=true
type EventConsumerList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []EventConsumer `json:"items"`
}
