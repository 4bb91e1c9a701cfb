package v1alpha1

// Condition types of EventConsumer and KafkaCluster.
const (
	// ConditionReady is True when the Deployment is applied, Kafka is
	// reachable and the handler pods are ready.
	ConditionReady = "Ready"
	// ConditionReconciling is True while lagscale is working towards the
	// desired state (waiting for pods, a rollout, a first lag reading).
	ConditionReconciling = "Reconciling"
	// ConditionStalled is True when the spec cannot be satisfied without a
	// change by a person (a missing topic, an invalid template).
	ConditionStalled = "Stalled"
	// ConditionKafkaReachable is True when the last poll of the cluster
	// succeeded.
	ConditionKafkaReachable = "KafkaReachable"
	// ConditionScalingLimited is True while replicas cannot follow the
	// lag: the lag asks for more than maxReplicas or the partition count
	// allows and the target is missed, part of the lag cannot be read, or
	// stuck partitions are left out of sizing. Its reason says which, its
	// message what would help.
	ConditionScalingLimited = "ScalingLimited"
	// ConditionInsecureTLS is True, and present only, while the Kafka
	// connection has tls.insecureSkipVerify set: the brokers' certificates
	// are not verified.
	ConditionInsecureTLS = "InsecureTLS"
	// ConditionGroupTypeMatches is True when the broker knows the group
	// under spec.groupType, False when under another type (the handlers
	// run another protocol than the spec says).
	ConditionGroupTypeMatches = "GroupTypeMatches"
)

// Condition reasons. Each is the STATUS column of kubectl get when it is the
// Ready condition's reason.
const (
	// ReasonReady: everything is in place and the handler pods are ready.
	ReasonReady = "Ready"
	// ReasonProgressing: the Deployment is rolling out or scaling.
	ReasonProgressing = "Progressing"
	// ReasonScaledToZero: minReplicas is 0 and the group is idle.
	ReasonScaledToZero = "ScaledToZero"
	// ReasonSecretNotFound: a referenced Secret or key does not exist yet.
	ReasonSecretNotFound = "SecretNotFound"
	// ReasonClusterNotFound: the referenced KafkaCluster does not exist yet.
	ReasonClusterNotFound = "KafkaClusterNotFound"
	// ReasonTopicNotFound: a subscribed topic does not exist.
	ReasonTopicNotFound = "TopicNotFound"
	// ReasonKafkaUnreachable: the last poll of the cluster failed.
	ReasonKafkaUnreachable = "KafkaUnreachable"
	// ReasonKafkaReachable: the last poll of the cluster succeeded.
	ReasonKafkaReachable = "KafkaReachable"
	// ReasonWaitingForLag: no lag reading has arrived yet.
	ReasonWaitingForLag = "WaitingForLag"
	// ReasonPaused: spec.scaling.paused freezes replicas.
	ReasonPaused = "Paused"
	// ReasonInvalidSpec: the spec passed the API server's validation but
	// cannot be turned into a Deployment.
	ReasonInvalidSpec = "InvalidSpec"
	// ReasonSecretReadFailed: reading a referenced Secret failed for a
	// reason other than its absence (RBAC, the API server); lagscale
	// retries with backoff.
	ReasonSecretReadFailed = "SecretReadFailed"
	// ReasonApplyFailed: a step of the reconcile failed; lagscale retries
	// with backoff.
	ReasonApplyFailed = "ApplyFailed"
	// ReasonDeploymentWriteFailed: the API server refused the write of the
	// handler Deployment, or of the scale target's replicas through its
	// scale subresource (an admission webhook or policy, a quota, a
	// conflict); the message is the API server's. No scale is recorded
	// until a write succeeds, and lagscale retries with backoff, not
	// after the minimum scale interval.
	ReasonDeploymentWriteFailed = "DeploymentWriteFailed"
	// ReasonGroupTypeMatches: the broker reports the group's type as
	// spec.groupType says.
	ReasonGroupTypeMatches = "GroupTypeMatches"
	// ReasonGroupTypeMismatch: the broker reports the group under another
	// type than spec.groupType.
	ReasonGroupTypeMismatch = "GroupTypeMismatch"
	// ReasonGroupNotFound: the broker does not know the group (yet).
	ReasonGroupNotFound = "GroupNotFound"
	// ReasonSucceeded: the last reconcile finished without error.
	ReasonSucceeded = "Succeeded"
	// ReasonAtMaxReplicas: ScalingLimited because maxReplicas is reached
	// while the target is missed. Also the Ready reason then.
	ReasonAtMaxReplicas = "AtMaxReplicas"
	// ReasonAtPartitionCount: ScalingLimited because every partition has
	// its own replica while the target is missed. Also the Ready reason.
	ReasonAtPartitionCount = "AtPartitionCount"
	// ReasonPartialLagData: ScalingLimited because some subscribed topics
	// or partitions could not be read (status.lag.unreadable names them):
	// replicas are not scaled down until they can. Also the Ready reason.
	ReasonPartialLagData = "PartialLagData"
	// ReasonStuckPartitions: ScalingLimited because partitions do not move
	// although the group has members; they are left out of sizing. Also
	// the Ready reason.
	ReasonStuckPartitions = "StuckPartitions"
	// ReasonAtTaskCount: ScalingLimited because a streams group has as
	// many stream threads as tasks.
	ReasonAtTaskCount = "AtTaskCount"
	// ReasonStreamsUnsupported: the broker does not implement the
	// KIP-1071 streams group protocol (StreamsGroupDescribe, API key 89).
	ReasonStreamsUnsupported = "StreamsGroupsUnsupported"
	// ReasonTopologyMismatch: spec.topics of a streams group are not the
	// source topics of the topology the broker reports.
	ReasonTopologyMismatch = "TopologyMismatch"
	// ReasonWithinBounds: ScalingLimited is False; replicas follow the lag.
	ReasonWithinBounds = "WithinBounds"
	// ReasonInsecureSkipVerify: tls.insecureSkipVerify is set.
	ReasonInsecureSkipVerify = "InsecureSkipVerify"
	// ReasonScaleTargetConflict: something else scales spec.scaleTargetRef,
	// an HorizontalPodAutoscaler (KEDA's ScaledObject makes one); the
	// message names it. lagscale writes nothing until it is gone, then
	// takes over by itself.
	ReasonScaleTargetConflict = "ScaleTargetConflict"
	// ReasonScaleTargetNotFound: spec.scaleTargetRef names a workload, or a
	// kind, that does not exist (yet); lagscale continues when it appears.
	ReasonScaleTargetNotFound = "ScaleTargetNotFound"
	// ReasonScaleTargetUnsupported: spec.scaleTargetRef names a kind without
	// a scale subresource, so there are no replicas to set.
	ReasonScaleTargetUnsupported = "ScaleTargetUnsupported"
)

// Event reasons, recorded on transitions only.
const (
	EventScaledUp   = "ScaledUp"
	EventScaledDown = "ScaledDown"
	EventDeployment = "DeploymentApplied"
	// EventDeploymentWriteFailed is a Warning carrying the API server's
	// answer to a refused Deployment write.
	EventDeploymentWriteFailed = "DeploymentWriteFailed"
	EventWaiting               = "Waiting"
	EventRecovered             = "Recovered"
	EventStalled               = "Stalled"
	EventKafkaUnreached        = "KafkaUnreachable"
	// EventScalingLimited (Warning) marks ScalingLimited turning True or
	// changing its reason; the reason is in the message.
	EventScalingLimited = "ScalingLimited"
	// EventScalingUnlimited marks ScalingLimited turning False.
	EventScalingUnlimited = "ScalingNoLongerLimited"
	// EventInsecureTLS is a Warning recorded when tls.insecureSkipVerify
	// becomes set; the InsecureTLS condition stays while it is.
	EventInsecureTLS = "InsecureSkipVerify"
	// EventReplicasOverridden is a Warning recorded when another field
	// manager (a GitOps tool re-applying replicas, a person with kubectl
	// scale) changes the replicas of spec.scaleTargetRef after lagscale set
	// them; the message names the manager.
	EventReplicasOverridden = "ReplicasOverridden"
)
