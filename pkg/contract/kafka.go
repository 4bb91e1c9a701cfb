package contract

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"
)

// Security protocols accepted in KAFKA_SECURITY_PROTOCOL, as Kafka's
// security.protocol names them.
const (
	ProtocolPlaintext     = "PLAINTEXT"
	ProtocolSSL           = "SSL"
	ProtocolSASLPlaintext = "SASL_PLAINTEXT"
	ProtocolSASLSSL       = "SASL_SSL"
)

// SASL mechanisms accepted in KAFKA_SASL_MECHANISM and by the API.
const (
	MechanismPlain       = "PLAIN"
	MechanismScramSHA256 = "SCRAM-SHA-256"
	MechanismScramSHA512 = "SCRAM-SHA-512"
)

// Offset reset policies accepted in KAFKA_AUTO_OFFSET_RESET.
const (
	ResetEarliest = "earliest"
	ResetLatest   = "latest"
)

// DefaultOffsetReset is the one default of the operator (the CRD's
// offsetResetPolicy default) and of the SDKs when KAFKA_AUTO_OFFSET_RESET is
// unset. It is latest, Kafka's own default, so that a new consumer group
// does not replay a topic's whole retention, and it is what the lag engine
// assumes for a partition without a commit. Partitions added to a topic
// later are still read from their start: see ResetOffset.
const DefaultOffsetReset = ResetLatest

// Isolation levels accepted in KAFKA_ISOLATION_LEVEL, as Kafka's
// isolation.level names them.
const (
	IsolationReadCommitted   = "read_committed"
	IsolationReadUncommitted = "read_uncommitted"
)

// DefaultIsolationLevel is read_committed: records of aborted transactions
// never reach a handler, and records of open transactions wait until they
// commit. KAFKA_ISOLATION_LEVEL=read_uncommitted opts out.
const DefaultIsolationLevel = IsolationReadCommitted

// TLS holds PEM material for a TLS connection to Kafka.
type TLS struct {
	// CA is the PEM bundle used to verify brokers; nil uses the system roots.
	CA []byte
	// Cert is the PEM client certificate for mutual TLS, optional.
	Cert []byte
	// Key is the PEM private key matching Cert, optional.
	Key []byte
	// InsecureSkipVerify disables broker certificate verification.
	InsecureSkipVerify bool
}

// SASL holds SASL credentials. They never appear in an error this package
// returns.
type SASL struct {
	// Mechanism is PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512.
	Mechanism string
	// Username is the SASL user name.
	Username string
	// Password is the SASL password.
	Password string
}

// Connection is how a client reaches Kafka: the bootstrap servers and,
// when set, TLS and SASL. Both the operator's lag engine and the handler
// SDK build their franz-go clients from it, so that they connect the same
// way.
type Connection struct {
	// BootstrapServers are the "host:port" seed brokers.
	BootstrapServers []string
	// TLS enables TLS when non-nil.
	TLS *TLS
	// SASL enables SASL authentication when non-nil.
	SASL *SASL
}

// Options returns the franz-go options for c: seeds, TLS and SASL. Errors
// say what is wrong with the settings and never contain key material or
// passwords.
func (c Connection) Options() ([]kgo.Opt, error) {
	if len(c.BootstrapServers) == 0 {
		return nil, errors.New("no bootstrap servers")
	}
	opts := []kgo.Opt{kgo.SeedBrokers(c.BootstrapServers...)}
	if c.TLS != nil {
		tc, err := c.TLS.config()
		if err != nil {
			return nil, err
		}
		opts = append(opts, kgo.DialTLSConfig(tc))
	}
	if s := c.SASL; s != nil {
		switch strings.ToUpper(s.Mechanism) {
		case MechanismPlain:
			opts = append(opts, kgo.SASL(plain.Auth{User: s.Username, Pass: s.Password}.AsMechanism()))
		case MechanismScramSHA256:
			opts = append(opts, kgo.SASL(scram.Auth{User: s.Username, Pass: s.Password}.AsSha256Mechanism()))
		case MechanismScramSHA512:
			opts = append(opts, kgo.SASL(scram.Auth{User: s.Username, Pass: s.Password}.AsSha512Mechanism()))
		default:
			return nil, fmt.Errorf("unsupported SASL mechanism %q (want PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512)", s.Mechanism)
		}
	}
	return opts, nil
}

// config turns the PEM material into a tls.Config.
func (t *TLS) config() (*tls.Config, error) {
	tc := &tls.Config{
		MinVersion:         tls.VersionTLS12,
		InsecureSkipVerify: t.InsecureSkipVerify, //nolint:gosec // explicitly requested by the user
	}
	if len(t.CA) > 0 {
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(t.CA) {
			return nil, errors.New("TLS CA: no PEM certificate found")
		}
		tc.RootCAs = pool
	}
	if len(t.Cert) > 0 || len(t.Key) > 0 {
		cert, err := tls.X509KeyPair(t.Cert, t.Key)
		if err != nil {
			return nil, fmt.Errorf("TLS client certificate: %w", err)
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	return tc, nil
}

// TLSFromFiles reads the mounted files named by KAFKA_TLS_CA_FILE,
// KAFKA_TLS_CERT_FILE and KAFKA_TLS_KEY_FILE; an empty path is skipped.
// Errors name the variable whose file could not be read.
func TLSFromFiles(caFile, certFile, keyFile string, insecureSkipVerify bool) (*TLS, error) {
	t := &TLS{InsecureSkipVerify: insecureSkipVerify}
	for _, f := range []struct {
		env, path string
		dst       *[]byte
	}{
		{EnvTLSCAFile, caFile, &t.CA},
		{EnvTLSCertFile, certFile, &t.Cert},
		{EnvTLSKeyFile, keyFile, &t.Key},
	} {
		if f.path == "" {
			continue
		}
		b, err := os.ReadFile(f.path)
		if err != nil {
			return nil, fmt.Errorf("reading %s: %w", f.env, err)
		}
		*f.dst = b
	}
	return t, nil
}

// ResetOffset is where a consumer starts on a partition that has no
// committed offset. earliest starts at the log start. latest skips what was
// in the log when the consumer started, but nothing after: it starts at the
// first record at or after started, which is the end of the partitions that
// existed then and the start of a partition added later, so records
// produced before the consumer notices a new partition are not lost.
func ResetOffset(policy string, started time.Time) (kgo.Offset, error) {
	switch policy {
	case ResetEarliest:
		return kgo.NewOffset().AtStart(), nil
	case ResetLatest:
		return kgo.NewOffset().AfterMilli(started.UnixMilli()), nil
	}
	return kgo.Offset{}, fmt.Errorf("%s=%q: expected earliest or latest", EnvAutoOffsetReset, policy)
}

// IsolationLevel turns an isolation level from KAFKA_ISOLATION_LEVEL into
// the franz-go option; empty means DefaultIsolationLevel.
func IsolationLevel(level string) (kgo.Opt, error) {
	switch level {
	case "", IsolationReadCommitted:
		return kgo.FetchIsolationLevel(kgo.ReadCommitted()), nil
	case IsolationReadUncommitted:
		return kgo.FetchIsolationLevel(kgo.ReadUncommitted()), nil
	}
	return nil, fmt.Errorf("%s=%q: expected read_committed or read_uncommitted", EnvIsolationLevel, level)
}
