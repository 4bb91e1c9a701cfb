// Package contract names the environment variables lagscale injects into a
// handler container: the handler contract of ARCHITECTURE.md. The operator
// (internal/deploy) writes them and handler SDKs (pkg/handler) read them,
// from this one list. It has no dependencies, so a handler image importing
// it pulls in nothing else.
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
	EnvAutoOffsetReset = "KAFKA_AUTO_OFFSET_RESET"
	// EnvConsumer is the EventConsumer as namespace/name.
	EnvConsumer = "LAGSCALE_CONSUMER"
	// EnvDeadLetterTopic is the dead-letter topic, when one is set.
	EnvDeadLetterTopic = "LAGSCALE_DEAD_LETTER_TOPIC"
)
