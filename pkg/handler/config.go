package handler

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/lagscale/lagscale/pkg/contract"
)

// Environment variable names of the handler contract. The operator injects
// them into the handler container; docs/handler-contract.md is the table.
const (
	EnvBootstrapServers = contract.EnvBootstrapServers
	EnvTopics           = contract.EnvTopics
	EnvConsumerGroup    = contract.EnvConsumerGroup
	EnvSecurityProtocol = contract.EnvSecurityProtocol
	EnvSASLMechanism    = contract.EnvSASLMechanism
	EnvSASLUsername     = contract.EnvSASLUsername
	EnvSASLPassword     = contract.EnvSASLPassword
	EnvTLSCAFile        = contract.EnvTLSCAFile
	EnvTLSCertFile      = contract.EnvTLSCertFile
	EnvTLSKeyFile       = contract.EnvTLSKeyFile
	EnvTLSInsecure      = contract.EnvTLSInsecure
	EnvAutoOffsetReset  = contract.EnvAutoOffsetReset
	EnvConsumer         = contract.EnvConsumer
	EnvDeadLetterTopic  = contract.EnvDeadLetterTopic
	EnvIsolationLevel   = contract.EnvIsolationLevel
	EnvGroupType        = contract.EnvGroupType
	// EnvHTTPAddr is the listen address of the health and metrics server.
	// It is not part of the operator's contract; it defaults to ":8080".
	EnvHTTPAddr = "LAGSCALE_HTTP_ADDR"
)

// Security protocols accepted in KAFKA_SECURITY_PROTOCOL.
const (
	ProtocolPlaintext     = contract.ProtocolPlaintext
	ProtocolSSL           = contract.ProtocolSSL
	ProtocolSASLPlaintext = contract.ProtocolSASLPlaintext
	ProtocolSASLSSL       = contract.ProtocolSASLSSL
)

// SASL mechanisms accepted in KAFKA_SASL_MECHANISM.
const (
	MechanismPlain       = contract.MechanismPlain
	MechanismScramSHA256 = contract.MechanismScramSHA256
	MechanismScramSHA512 = contract.MechanismScramSHA512
)

// Offset reset policies accepted in KAFKA_AUTO_OFFSET_RESET.
const (
	ResetEarliest = contract.ResetEarliest
	ResetLatest   = contract.ResetLatest
)

// Group types accepted in KAFKA_GROUP_TYPE.
const (
	GroupClassic  = contract.GroupClassic
	GroupConsumer = contract.GroupConsumer
	GroupShare    = contract.GroupShare
)

// Isolation levels accepted in KAFKA_ISOLATION_LEVEL.
const (
	IsolationReadCommitted   = contract.IsolationReadCommitted
	IsolationReadUncommitted = contract.IsolationReadUncommitted
)

// DefaultHTTPAddr is where the health and metrics server listens when
// neither LAGSCALE_HTTP_ADDR nor WithHTTPAddr says otherwise.
const DefaultHTTPAddr = ":8080"

// Config is the handler's view of the injected environment. ConfigFromEnv
// builds it; tests and callers that do not run under the operator may
// build it directly and pass it with WithConfig.
type Config struct {
	// Brokers are the bootstrap servers (KAFKA_BOOTSTRAP_SERVERS).
	Brokers []string
	// Topics are the topics to consume (KAFKA_TOPICS).
	Topics []string
	// Group is the consumer group (KAFKA_CONSUMER_GROUP).
	Group string
	// SecurityProtocol is PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL.
	SecurityProtocol string
	// SASLMechanism is PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512 when the
	// protocol is SASL_*.
	SASLMechanism string
	// SASLUsername is the SASL user name.
	SASLUsername string
	// SASLPassword is the SASL password. It is never logged or put in an
	// error.
	SASLPassword string
	// TLSCAFile is a PEM bundle of CAs to trust instead of the system pool.
	TLSCAFile string
	// TLSCertFile and TLSKeyFile are a PEM client certificate and key.
	TLSCertFile string
	// TLSKeyFile is the key of TLSCertFile.
	TLSKeyFile string
	// TLSInsecureSkipVerify disables server certificate verification.
	TLSInsecureSkipVerify bool
	// AutoOffsetReset is where a partition with no committed offset starts
	// (KAFKA_AUTO_OFFSET_RESET): latest (contract.DefaultOffsetReset, the
	// operator's default too) or earliest. With latest, a partition added
	// while the consumer runs is still read from its start; see
	// contract.ResetOffset.
	AutoOffsetReset string
	// IsolationLevel is read_committed (the default: records of aborted
	// transactions are never handled) or read_uncommitted
	// (KAFKA_ISOLATION_LEVEL).
	IsolationLevel string
	// GroupType is the group protocol (KAFKA_GROUP_TYPE): classic (the
	// default), consumer (KIP-848: the broker assigns partitions) or share
	// (KIP-932: records are acquired and acknowledged one by one; see
	// Consumer.Run).
	GroupType string
	// Consumer is the EventConsumer that runs this handler, namespace/name
	// (LAGSCALE_CONSUMER). It is used as the Kafka client ID and in logs.
	Consumer string
	// DeadLetterTopic receives records that failed every attempt
	// (LAGSCALE_DEAD_LETTER_TOPIC). Empty means no dead-letter topic: the
	// partition stops at the failing record.
	DeadLetterTopic string
	// HTTPAddr is the listen address of /healthz, /readyz and /metrics
	// (LAGSCALE_HTTP_ADDR, default :8080).
	HTTPAddr string
}

// ConfigFromEnv reads the handler contract through getenv (os.Getenv in
// production). The error names the first variable that is missing or
// malformed and what was expected; it never contains a secret value.
func ConfigFromEnv(getenv func(string) string) (Config, error) {
	get := func(k string) string { return strings.TrimSpace(getenv(k)) }
	c := Config{
		Brokers:          splitList(get(EnvBootstrapServers)),
		Topics:           splitList(get(EnvTopics)),
		Group:            get(EnvConsumerGroup),
		SecurityProtocol: strings.ToUpper(get(EnvSecurityProtocol)),
		SASLMechanism:    strings.ToUpper(get(EnvSASLMechanism)),
		SASLUsername:     getenv(EnvSASLUsername),
		SASLPassword:     getenv(EnvSASLPassword),
		TLSCAFile:        get(EnvTLSCAFile),
		TLSCertFile:      get(EnvTLSCertFile),
		TLSKeyFile:       get(EnvTLSKeyFile),
		AutoOffsetReset:  strings.ToLower(get(EnvAutoOffsetReset)),
		IsolationLevel:   strings.ToLower(get(EnvIsolationLevel)),
		GroupType:        strings.ToLower(get(EnvGroupType)),
		Consumer:         get(EnvConsumer),
		DeadLetterTopic:  get(EnvDeadLetterTopic),
		HTTPAddr:         get(EnvHTTPAddr),
	}
	if v := get(EnvTLSInsecure); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return Config{}, fmt.Errorf("%s=%q: expected true or false", EnvTLSInsecure, v)
		}
		c.TLSInsecureSkipVerify = b
	}
	if c.SecurityProtocol == "" {
		c.SecurityProtocol = ProtocolPlaintext
	}
	if c.AutoOffsetReset == "" {
		c.AutoOffsetReset = contract.DefaultOffsetReset
	}
	if c.IsolationLevel == "" {
		c.IsolationLevel = contract.DefaultIsolationLevel
	}
	if c.GroupType == "" {
		c.GroupType = GroupClassic
	}
	if c.HTTPAddr == "" {
		c.HTTPAddr = DefaultHTTPAddr
	}
	if err := c.Validate(); err != nil {
		return Config{}, err
	}
	return c, nil
}

// Validate checks a Config the way ConfigFromEnv does, naming the
// environment variable that corresponds to the first bad field.
func (c Config) Validate() error {
	if len(c.Brokers) == 0 {
		return fmt.Errorf("%s is not set: expected a comma-separated list of host:port bootstrap servers", EnvBootstrapServers)
	}
	for _, b := range c.Brokers {
		if i := strings.LastIndex(b, ":"); i <= 0 || i == len(b)-1 {
			return fmt.Errorf("%s contains %q: expected host:port", EnvBootstrapServers, b)
		} else if _, err := strconv.ParseUint(b[i+1:], 10, 16); err != nil {
			return fmt.Errorf("%s contains %q: expected a numeric port", EnvBootstrapServers, b)
		}
	}
	if len(c.Topics) == 0 {
		return fmt.Errorf("%s is not set: expected a comma-separated list of topics", EnvTopics)
	}
	if c.Group == "" {
		return fmt.Errorf("%s is not set: expected the consumer group name", EnvConsumerGroup)
	}
	var useSASL bool
	switch c.SecurityProtocol {
	case ProtocolPlaintext, ProtocolSSL:
	case ProtocolSASLPlaintext, ProtocolSASLSSL:
		useSASL = true
	default:
		return fmt.Errorf("%s=%q: expected one of PLAINTEXT, SSL, SASL_PLAINTEXT, SASL_SSL", EnvSecurityProtocol, c.SecurityProtocol)
	}
	if useSASL {
		switch c.SASLMechanism {
		case MechanismPlain, MechanismScramSHA256, MechanismScramSHA512:
		case "":
			return fmt.Errorf("%s is not set but %s is %s: expected PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512", EnvSASLMechanism, EnvSecurityProtocol, c.SecurityProtocol)
		default:
			return fmt.Errorf("%s=%q: expected PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512", EnvSASLMechanism, c.SASLMechanism)
		}
		if c.SASLUsername == "" {
			return fmt.Errorf("%s is not set but %s is %s: expected the SASL user name", EnvSASLUsername, EnvSecurityProtocol, c.SecurityProtocol)
		}
		if c.SASLPassword == "" {
			return fmt.Errorf("%s is not set but %s is %s: expected the SASL password", EnvSASLPassword, EnvSecurityProtocol, c.SecurityProtocol)
		}
	}
	if (c.TLSCertFile == "") != (c.TLSKeyFile == "") {
		return fmt.Errorf("only one of %s and %s is set: expected both (client certificate and its key) or neither", EnvTLSCertFile, EnvTLSKeyFile)
	}
	switch c.AutoOffsetReset {
	case ResetEarliest, ResetLatest:
	default:
		return fmt.Errorf("%s=%q: expected earliest or latest", EnvAutoOffsetReset, c.AutoOffsetReset)
	}
	if _, err := contract.IsolationLevel(c.IsolationLevel); err != nil {
		return err
	}
	switch c.GroupType {
	case "", GroupClassic, GroupConsumer, GroupShare:
	default:
		return fmt.Errorf("%s=%q: expected classic, consumer or share", EnvGroupType, c.GroupType)
	}
	return nil
}

// usesTLS reports whether the protocol needs TLS.
func (c Config) usesTLS() bool {
	return c.SecurityProtocol == ProtocolSSL || c.SecurityProtocol == ProtocolSASLSSL
}

// ClientOptions returns the franz-go options that connect to the cluster
// described by c: seeds, TLS and SASL, built by pkg/contract as the
// operator builds its own. It reads the TLS files, so it fails when a file
// is missing or not PEM. Group, topic, offset and isolation options are not
// included; Run adds them.
func (c Config) ClientOptions() ([]kgo.Opt, error) {
	conn := contract.Connection{BootstrapServers: c.Brokers}
	if c.usesTLS() {
		t, err := contract.TLSFromFiles(c.TLSCAFile, c.TLSCertFile, c.TLSKeyFile, c.TLSInsecureSkipVerify)
		if err != nil {
			return nil, err
		}
		conn.TLS = t
	}
	if c.SecurityProtocol == ProtocolSASLPlaintext || c.SecurityProtocol == ProtocolSASLSSL {
		conn.SASL = &contract.SASL{Mechanism: c.SASLMechanism, Username: c.SASLUsername, Password: c.SASLPassword}
	}
	opts, err := conn.Options()
	if err != nil {
		return nil, err
	}
	if c.Consumer != "" {
		opts = append(opts, kgo.ClientID("lagscale-handler/"+c.Consumer))
	}
	return opts, nil
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}
