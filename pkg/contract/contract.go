// Package contract is the handler contract of docs/handler-contract.md: the
// environment variables lagscale injects into a handler container, and the
// one place that turns a Kafka connection (bootstrap servers, TLS, SASL,
// offset reset, isolation level) into franz-go options. The operator
// (internal/deploy writes the variables, internal/lag connects with
// Connection) and the handler SDK (pkg/handler) share it, so that the lag
// engine and the handler pods reach Kafka the same way and start from the
// same offsets. It imports franz-go and the standard library only: it is
// public, for user images, and never imports lagscale's internal packages.
package contract

// Environment variable names of the handler contract.
const (
	// EnvBootstrapServers holds the brokers, comma-separated host:port.
	EnvBootstrapServers = "KAFKA_BOOTSTRAP_SERVERS"
	// EnvTopics holds the topics, comma-separated.
	EnvTopics = "KAFKA_TOPICS"
	// EnvConsumerGroup holds the consumer group.
	EnvConsumerGroup = "KAFKA_CONSUMER_GROUP"
	// EnvSecurityProtocol is PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL.
	EnvSecurityProtocol = "KAFKA_SECURITY_PROTOCOL"
	// EnvSASLMechanism is PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512.
	EnvSASLMechanism = "KAFKA_SASL_MECHANISM"
	// EnvSASLUsername comes from the referenced Secret's "username" key.
	EnvSASLUsername = "KAFKA_SASL_USERNAME"
	// EnvSASLPassword comes from the referenced Secret's "password" key.
	EnvSASLPassword = "KAFKA_SASL_PASSWORD"
	// EnvTLSCAFile is the path of the mounted CA bundle.
	EnvTLSCAFile = "KAFKA_TLS_CA_FILE"
	// EnvTLSCertFile is the path of the mounted client certificate.
	EnvTLSCertFile = "KAFKA_TLS_CERT_FILE"
	// EnvTLSKeyFile is the path of the mounted client key.
	EnvTLSKeyFile = "KAFKA_TLS_KEY_FILE"
	// EnvTLSInsecure is "true" when broker certificates are not verified.
	EnvTLSInsecure = "KAFKA_TLS_INSECURE_SKIP_VERIFY"
	// EnvAutoOffsetReset is "latest" or "earliest", the consumer's reset
	// policy, which is also how lagscale counts lag without a commit.
	// Unset means DefaultOffsetReset.
	EnvAutoOffsetReset = "KAFKA_AUTO_OFFSET_RESET"
	// EnvIsolationLevel is "read_committed" (DefaultIsolationLevel, used
	// when unset) or "read_uncommitted". The operator does not inject it:
	// a handler that wants records of aborted and open transactions sets
	// it to read_uncommitted in its own env to opt out.
	EnvIsolationLevel = "KAFKA_ISOLATION_LEVEL"
	// EnvGroupType is the group protocol: GroupClassic, GroupConsumer,
	// GroupShare or GroupStreams. Unset means GroupClassic.
	EnvGroupType = "KAFKA_GROUP_TYPE"
	// EnvConsumer is the EventConsumer as namespace/name.
	EnvConsumer = "LAGSCALE_CONSUMER"
	// EnvDeadLetterTopic is the dead-letter topic, when one is set.
	EnvDeadLetterTopic = "LAGSCALE_DEAD_LETTER_TOPIC"
)

// Values of EnvGroupType.
const (
	// GroupClassic is the classic consumer group protocol: kgo.ConsumerGroup
	// with a client-side balancer.
	GroupClassic = "classic"
	// GroupConsumer is the KIP-848 consumer protocol (Kafka 4.0+):
	// kgo.ConsumerGroup with kgo.ServerSideBalancer.
	GroupConsumer = "consumer"
	// GroupShare is a KIP-932 share group (Kafka 4.2+): kgo.ShareGroup,
	// each record acknowledged on its own.
	GroupShare = "share"
	// GroupStreams is a KIP-1071 streams group (Kafka 4.2+): a Kafka
	// Streams application with group.protocol=streams and application.id
	// set to EnvConsumerGroup. EnvTopics may be empty: the topology names
	// the topics.
	GroupStreams = "streams"
)
