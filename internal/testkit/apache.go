package testkit

import (
	"bufio"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/lagscale/lagscale/internal/kafkabroker"
	"github.com/lagscale/lagscale/pkg/contract"
)

// Apache Kafka versions that `make kafka` resolves into bin/kafka/<version>
// (KAFKA_VERSIONS in the Makefile names the same two).
const (
	// KafkaVersion is the newest 4.x that resolves from Maven Central.
	KafkaVersion = kafkabroker.Version
	// KafkaClassicVersion is the newest 3.9.x: classic-protocol clusters
	// are still common.
	KafkaClassicVersion = kafkabroker.ClassicVersion
)

// ScramMechanism is the SASL mechanism of the SASL listeners.
const ScramMechanism = kafkabroker.ScramMechanism

// Apache is a single-node Apache Kafka (KRaft, broker and controller in
// one JVM) run from the jars `make kafka` resolved, by internal/kafkabroker
// (which the sandbox uses too). It listens on PLAINTEXT, SASL_PLAINTEXT
// (SCRAM-SHA-512) and SASL_SSL (SCRAM-SHA-512 over TLS with a CA generated
// at start), all on 127.0.0.1 and free ports. It is stopped by its PID when
// the test ends, failed or not; on failure the broker's log is printed.
type Apache struct {
	// Version is the Apache Kafka version.
	Version string
	// Plain, SASLPlain and SASLSSL are the "host:port" of the PLAINTEXT,
	// SASL_PLAINTEXT and SASL_SSL listeners.
	Plain, SASLPlain, SASLSSL string
	// User and Password are the SCRAM-SHA-512 credentials the broker knows.
	User, Password string
	// CAPEM is the CA that signed the SASL_SSL listener's certificate;
	// CAFile holds the same PEM.
	CAPEM  []byte
	CAFile string
	// StartTime is how long the first start took, from the JVM launch of
	// the storage format to a broker answering on every listener.
	StartTime time.Duration

	t   testing.TB
	b   *kafkabroker.Broker
	adm *kadm.Client
}

// StartApache starts Apache Kafka version and waits until it answers on
// every listener. A missing JDK or missing jars fail the test with a
// message naming `make kafka`; nothing is skipped.
func StartApache(t testing.TB, version string) *Apache {
	t.Helper()
	began := time.Now()
	b, err := kafkabroker.New(context.Background(), kafkabroker.Config{
		Version: version, Libs: KafkaLibs(t, version), Dir: t.TempDir(),
	})
	if err != nil {
		t.Fatal(err)
	}
	a := &Apache{Version: version, t: t, b: b,
		Plain: b.Plain, SASLPlain: b.SASLPlain, SASLSSL: b.SASLSSL,
		User: b.User, Password: b.Password, CAPEM: b.CAPEM, CAFile: b.CAFile}
	t.Cleanup(func() {
		a.Stop()
		if t.Failed() {
			a.dumpLog()
		}
	})
	a.Start()
	cl, err := kgo.NewClient(kgo.SeedBrokers(a.Plain))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	a.adm = kadm.NewClient(cl)
	a.StartTime = time.Since(began)
	t.Logf("Apache Kafka %s ready in %s (PLAINTEXT %s, SASL_PLAINTEXT %s, SASL_SSL %s)", version, a.StartTime.Round(time.Millisecond), a.Plain, a.SASLPlain, a.SASLSSL)
	return a
}

// Kind implements Broker.
func (a *Apache) Kind() string { return "apache-" + a.Version }

// Bootstrap implements Broker.
func (a *Apache) Bootstrap() []string { return []string{a.Plain} }

// Admin implements Broker.
func (a *Apache) Admin() *kadm.Client { return a.adm }

// Connection is how a client reaches the listener of the security protocol
// (PLAINTEXT, SASL_PLAINTEXT or SASL_SSL), set up by pkg/contract.
func (a *Apache) Connection(protocol string) (contract.Connection, error) {
	return a.b.Connection(protocol)
}

// Start launches the broker (again, after Stop: same ports, same data)
// and waits until it answers on every listener.
func (a *Apache) Start() {
	a.t.Helper()
	if err := a.b.Start(context.Background()); err != nil {
		a.t.Fatal(err)
	}
}

// Stop stops the broker by its PID: SIGTERM for a clean shutdown, SIGKILL
// after 30 s. It does nothing when the broker is not running.
func (a *Apache) Stop() { a.b.Stop() }

// dumpLog prints the broker's log (the last 400 lines) to the test output.
func (a *Apache) dumpLog() {
	a.t.Logf("Apache Kafka %s log (%s, last 400 lines):\n%s", a.Version, a.b.LogPath(), a.b.LogTail(400))
}

// SupportsShareGroups reports whether version has share groups (KIP-932)
// that the share.version feature turns on: 4.1 and later.
func SupportsShareGroups(version string) bool { return kafkabroker.SupportsShareGroups(version) }

// KafkaLibs returns bin/kafka/<version>/libs of the module, failing the
// test with the make target to run when `make kafka` has not resolved it.
func KafkaLibs(t testing.TB, version string) string {
	t.Helper()
	root, err := moduleRoot()
	if err != nil {
		t.Fatalf("finding the module root for bin/kafka: %v", err)
	}
	libs, err := kafkabroker.LibsDir(filepath.Join(root, "bin"), version)
	if err != nil {
		t.Fatal(err)
	}
	return libs
}

// moduleRoot walks up from the working directory to the go.mod of the
// module.
func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if f, err := os.Open(filepath.Join(dir, "go.mod")); err == nil {
			s := bufio.NewScanner(f)
			first := ""
			if s.Scan() {
				first = s.Text()
			}
			f.Close()
			if strings.TrimSpace(first) == "module github.com/lagscale/lagscale" {
				return dir, nil
			}
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod of github.com/lagscale/lagscale above the working directory")
		}
		dir = parent
	}
}
