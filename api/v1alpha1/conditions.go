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
	// ConditionInsecureTLS is True, and present only, while the Kafka
	// connection has tls.insecureSkipVerify set: the brokers' certificates
	// are not verified.
	ConditionInsecureTLS = "InsecureTLS"
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
	// ReasonApplyFailed: applying the Deployment failed.
	ReasonApplyFailed = "ApplyFailed"
	// ReasonSucceeded: the last reconcile finished without error.
	ReasonSucceeded = "Succeeded"
	// ReasonInsecureSkipVerify: tls.insecureSkipVerify is set.
	ReasonInsecureSkipVerify = "InsecureSkipVerify"
)

// Event reasons, recorded on transitions only.
const (
	EventScaledUp       = "ScaledUp"
	EventScaledDown     = "ScaledDown"
	EventDeployment     = "DeploymentApplied"
	EventWaiting        = "Waiting"
	EventRecovered      = "Recovered"
	EventStalled        = "Stalled"
	EventKafkaUnreached = "KafkaUnreachable"
	// EventInsecureTLS is a Warning recorded when tls.insecureSkipVerify
	// becomes set; the InsecureTLS condition stays while it is.
	EventInsecureTLS = "InsecureSkipVerify"
)
