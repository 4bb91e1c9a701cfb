// Package kafkabroker runs a single-node Apache Kafka (KRaft, broker and
// controller in one JVM) from the jars `make kafka` resolves into
// bin/kafka/<version>/libs. The compatibility suite (through
// internal/testkit) and the sandbox (`lagscale sandbox up --kafka apache`)
// both start their broker with it, so the broker a test proves is the one
// the sandbox runs.
//
// The broker listens on PLAINTEXT, SASL_PLAINTEXT (SCRAM-SHA-512) and
// SASL_SSL (SCRAM-SHA-512 over TLS with a CA generated at start), all on
// 127.0.0.1. It runs in its own process group and is stopped by its PID.
package kafkabroker

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/lagscale/lagscale/pkg/contract"
)

// Apache Kafka versions that `make kafka` resolves into bin/kafka/<version>
// (KAFKA_VERSIONS in the Makefile names the same two).
const (
	// Version is the newest 4.x that resolves from Maven Central.
	Version = "4.4.0"
	// ClassicVersion is the newest 3.9.x: classic-protocol clusters are
	// still common.
	ClassicVersion = "3.9.1"
)

// ScramMechanism is the SASL mechanism of the SASL listeners.
const ScramMechanism = "SCRAM-SHA-512"

// ReadyTimeout bounds the wait for every listener to answer after launch.
const ReadyTimeout = 2 * time.Minute

// Config says where a broker keeps its files and where it listens.
type Config struct {
	// Version is the Apache Kafka version; Libs its resolved jars (see
	// LibsDir). Java is the java binary; empty finds one (FindJava).
	Version, Libs, Java string
	// Dir holds the configuration, certificates, credentials and data.
	// Data in it that a previous broker formatted is reused, with the
	// SCRAM password it was formatted with.
	Dir string
	// LogPath receives the broker's output; empty means Dir/broker.log.
	LogPath string
	// Plain, SASLPlain, SASLSSL and Controller are the 127.0.0.1:port
	// addresses of the listeners; an empty one gets a free port.
	Plain, SASLPlain, SASLSSL, Controller string
	// Started, when set, is called with the JVM's PID right after launch,
	// before the wait for readiness, so that a supervisor can record it;
	// an error stops the JVM again. Exited is called once it has exited.
	Started func(pid int) error
	Exited  func(pid int)
}

// Broker is a configured Apache Kafka broker: New writes its files, Start
// launches it and Stop stops it by PID; Start again reuses its ports and
// data.
type Broker struct {
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
	// FormatTime is how long New took, storage format included.
	FormatTime time.Duration

	cfg Config

	mu   sync.Mutex
	proc *proc
}

type proc struct {
	cmd    *exec.Cmd
	exited chan struct{}
}

// New checks the JDK and the jars, picks free ports for the listeners
// cfg leaves empty, writes the certificates and configuration into
// cfg.Dir and formats the storage with kafka.tools.StorageTool (unless it
// is formatted already). It starts nothing that outlives it.
func New(ctx context.Context, cfg Config) (*Broker, error) {
	began := time.Now()
	if cfg.Java == "" {
		j, err := FindJava()
		if err != nil {
			return nil, err
		}
		cfg.Java = j
	}
	if cfg.LogPath == "" {
		cfg.LogPath = filepath.Join(cfg.Dir, "broker.log")
	}
	if err := os.MkdirAll(cfg.Dir, 0o755); err != nil {
		return nil, err
	}
	var unset []*string
	set := map[string]bool{}
	for _, a := range []*string{&cfg.Plain, &cfg.SASLPlain, &cfg.SASLSSL, &cfg.Controller} {
		if *a == "" {
			unset = append(unset, a)
		} else {
			set[*a] = true
		}
	}
	free, err := freeAddrs(len(unset), set)
	if err != nil {
		return nil, err
	}
	for i, a := range unset {
		*a = free[i]
	}
	b := &Broker{Version: cfg.Version, Plain: cfg.Plain, SASLPlain: cfg.SASLPlain, SASLSSL: cfg.SASLSSL, User: "lagscale", cfg: cfg}
	formatted := isFile(filepath.Join(cfg.Dir, "data", "meta.properties"))
	pw, err := os.ReadFile(b.passwordPath())
	switch {
	case formatted && err == nil:
		b.Password = strings.TrimSpace(string(pw))
	case formatted:
		return nil, fmt.Errorf("%s holds Apache Kafka data but no %s: remove it with `rm -rf %s`", cfg.Dir, b.passwordPath(), cfg.Dir)
	default:
		if b.Password, err = randomHex(12); err != nil {
			return nil, err
		}
		if err := os.WriteFile(b.passwordPath(), []byte(b.Password+"\n"), 0o600); err != nil {
			return nil, err
		}
	}
	if err := b.writePKI(); err != nil {
		return nil, fmt.Errorf("certificates for Apache Kafka: %w", err)
	}
	if err := b.writeConfig(); err != nil {
		return nil, err
	}
	if !formatted {
		if err := b.format(ctx); err != nil {
			return nil, err
		}
	}
	b.FormatTime = time.Since(began)
	return b, nil
}

func (b *Broker) passwordPath() string { return filepath.Join(b.cfg.Dir, "scram-password") }

// LogPath is the file the broker writes its output to.
func (b *Broker) LogPath() string { return b.cfg.LogPath }

// Connection is how a client reaches the listener named by its security
// protocol (PLAINTEXT, SASL_PLAINTEXT or SASL_SSL), the SASL ones as the
// broker's SCRAM user and SASL_SSL trusting the broker's CA. pkg/contract
// turns it into franz-go options as it does for the operator and the
// handler SDKs, so that a test reaches the broker the way they do.
func (b *Broker) Connection(protocol string) (contract.Connection, error) {
	scram := &contract.SASL{Mechanism: contract.MechanismScramSHA512, Username: b.User, Password: b.Password}
	switch protocol {
	case contract.ProtocolPlaintext:
		return contract.Connection{BootstrapServers: []string{b.Plain}}, nil
	case contract.ProtocolSASLPlaintext:
		return contract.Connection{BootstrapServers: []string{b.SASLPlain}, SASL: scram}, nil
	case contract.ProtocolSASLSSL:
		return contract.Connection{BootstrapServers: []string{b.SASLSSL}, SASL: scram, TLS: &contract.TLS{CA: b.CAPEM}}, nil
	}
	return contract.Connection{}, fmt.Errorf("kafkabroker: no %q listener: expected PLAINTEXT, SASL_PLAINTEXT or SASL_SSL", protocol)
}

// PID is the running JVM's process id, 0 when it is not running.
func (b *Broker) PID() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.proc == nil {
		return 0
	}
	return b.proc.cmd.Process.Pid
}

// Start launches the broker and waits until every listener answers. When
// the JVM exits early, readiness times out or ctx ends, the JVM is stopped
// again and the error quotes the end of its log.
func (b *Broker) Start(ctx context.Context) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.proc != nil {
		return fmt.Errorf("kafkabroker: Apache Kafka %s is already running (pid %d)", b.Version, b.proc.cmd.Process.Pid)
	}
	logf, err := os.OpenFile(b.cfg.LogPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer logf.Close()
	cmd := exec.Command(b.cfg.Java, b.jvmArgs("kafka.Kafka", filepath.Join(b.cfg.Dir, "server.properties"))...)
	cmd.Stdout, cmd.Stderr = logf, logf
	// Its own process group, so that a Ctrl-C in the terminal does not
	// reach it before its supervisor stops it by PID. Pdeathsig: a
	// supervisor killed outright (a test binary past its -timeout, `up`
	// under SIGKILL) takes the JVM along.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting Apache Kafka %s (%s): %w", b.Version, b.cfg.Java, err)
	}
	p := &proc{cmd: cmd, exited: make(chan struct{})}
	pid := cmd.Process.Pid
	// Started runs before the wait, so that Exited always follows it.
	if b.cfg.Started != nil {
		if err := b.cfg.Started(pid); err != nil {
			_ = syscall.Kill(-pid, syscall.SIGKILL)
			_ = cmd.Wait()
			return err
		}
	}
	go func() {
		_ = cmd.Wait()
		if b.cfg.Exited != nil {
			b.cfg.Exited(pid)
		}
		close(p.exited)
	}()
	if err := b.waitReady(ctx, p); err != nil {
		stopProc(p)
		return err
	}
	b.proc = p
	return nil
}

// Stop stops the broker by its PID: SIGTERM to its process group for a
// clean shutdown, SIGKILL after 30 s. It does nothing when the broker is
// not running, and reports whether SIGKILL was needed.
func (b *Broker) Stop() (killed bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	p := b.proc
	if p == nil {
		return false
	}
	b.proc = nil
	return stopProc(p)
}

func stopProc(p *proc) (killed bool) {
	pid := p.cmd.Process.Pid
	_ = syscall.Kill(-pid, syscall.SIGTERM)
	select {
	case <-p.exited:
		return false
	case <-time.After(30 * time.Second):
	}
	_ = syscall.Kill(-pid, syscall.SIGKILL)
	<-p.exited
	return true
}

// waitReady waits until every listener answers a Metadata request (the
// SASL ones authenticated).
func (b *Broker) waitReady(ctx context.Context, p *proc) error {
	deadline := time.Now().Add(ReadyTimeout)
	for _, name := range []string{contract.ProtocolPlaintext, contract.ProtocolSASLPlaintext, contract.ProtocolSASLSSL} {
		conn, err := b.Connection(name)
		if err != nil {
			return err
		}
		opts, err := conn.Options()
		if err != nil {
			return fmt.Errorf("kafkabroker: a client for the %s listener: %w", name, err)
		}
		for {
			err := pingListener(ctx, opts)
			if err == nil {
				break
			}
			select {
			case <-p.exited:
				return fmt.Errorf("kafkabroker: Apache Kafka %s exited before its %s listener answered (%v); the end of its log (%s):\n%s", b.Version, name, err, b.cfg.LogPath, b.LogTail(40))
			case <-ctx.Done():
				return ctx.Err()
			default:
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("kafkabroker: Apache Kafka %s: %s listener not ready after %s: %v; the end of its log (%s):\n%s", b.Version, name, ReadyTimeout, err, b.cfg.LogPath, b.LogTail(40))
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	return nil
}

func pingListener(ctx context.Context, opts []kgo.Opt) error {
	cl, err := kgo.NewClient(append(opts, kgo.RequestRetries(0), kgo.DialTimeout(2*time.Second))...)
	if err != nil {
		return err
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	m, err := kadm.NewClient(cl).BrokerMetadata(ctx)
	if err != nil {
		return err
	}
	if m.Controller < 0 && len(m.Brokers) == 0 {
		return errors.New("no brokers in metadata yet")
	}
	return nil
}

// LogTail returns the last n lines of the broker's log.
func (b *Broker) LogTail(n int) string {
	data, err := os.ReadFile(b.cfg.LogPath)
	if err != nil {
		return "(" + err.Error() + ")"
	}
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// jvmArgs are the java arguments to run main with args: a bounded heap,
// the resolved jars and the log4j2 configuration written by writeConfig.
// C1 only and the serial collector, because the broker serves small tests
// and a sandbox on a machine with few shared cores.
func (b *Broker) jvmArgs(main string, args ...string) []string {
	return append([]string{
		"-Xms128m", "-Xmx512m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1",
		"-Djava.awt.headless=true",
		"-Dlog4j2.configurationFile=" + filepath.Join(b.cfg.Dir, "log4j2.properties"),
		"-Dlog4j.configuration=file:" + filepath.Join(b.cfg.Dir, "log4j.properties"),
		"-cp", filepath.Join(b.cfg.Libs, "*"),
		main,
	}, args...)
}

// format runs kafka.tools.StorageTool: a new cluster id, the SCRAM user,
// and on 4.x the share.version feature that turns share groups on.
func (b *Broker) format(ctx context.Context) error {
	// A cluster id is 16 random bytes in URL-safe base64; one that starts
	// with '-' would read as an option to StorageTool's parser.
	var id string
	for id == "" || id[0] == '-' || id[0] == '_' {
		raw := make([]byte, 16)
		if _, err := rand.Read(raw); err != nil {
			return err
		}
		id = base64.RawURLEncoding.EncodeToString(raw)
	}
	args := []string{"format", "-t", id,
		"-c", filepath.Join(b.cfg.Dir, "server.properties"),
		"--add-scram", ScramMechanism + "=[name=" + b.User + ",password=" + b.Password + "]"}
	if SupportsShareGroups(b.Version) {
		args = append(args, "--feature", "share.version=1")
	}
	cmd := exec.CommandContext(ctx, b.cfg.Java, b.jvmArgs("kafka.tools.StorageTool", args...)...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	out, err := cmd.CombinedOutput()
	if err != nil {
		// The output never holds the password: StorageTool does not echo
		// its arguments.
		return fmt.Errorf("formatting Apache Kafka %s storage in %s (kafka.tools.StorageTool): %v\n%s", b.Version, b.cfg.Dir, err, out)
	}
	return nil
}

// SupportsShareGroups reports whether version has share groups (KIP-932)
// that the share.version feature turns on: 4.1 and later. 4.0 had only an
// early-access preview behind an unstable API flag.
func SupportsShareGroups(version string) bool {
	return !strings.HasPrefix(version, "3.") && !strings.HasPrefix(version, "4.0.")
}

func (b *Broker) writeConfig() error {
	dir := b.cfg.Dir
	jaas := "org.apache.kafka.common.security.scram.ScramLoginModule required;"
	props := []string{
		"process.roles=broker,controller",
		"node.id=1",
		"controller.quorum.voters=1@" + b.cfg.Controller,
		"controller.listener.names=CONTROLLER",
		"listeners=PLAINTEXT://" + b.Plain + ",SASL_PLAINTEXT://" + b.SASLPlain + ",SASL_SSL://" + b.SASLSSL + ",CONTROLLER://" + b.cfg.Controller,
		"advertised.listeners=PLAINTEXT://" + b.Plain + ",SASL_PLAINTEXT://" + b.SASLPlain + ",SASL_SSL://" + b.SASLSSL,
		"listener.security.protocol.map=PLAINTEXT:PLAINTEXT,SASL_PLAINTEXT:SASL_PLAINTEXT,SASL_SSL:SASL_SSL,CONTROLLER:PLAINTEXT",
		"inter.broker.listener.name=PLAINTEXT",
		"sasl.enabled.mechanisms=" + ScramMechanism,
		"listener.name.sasl_plaintext.scram-sha-512.sasl.jaas.config=" + jaas,
		"listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config=" + jaas,
		"listener.name.sasl_ssl.ssl.keystore.type=PEM",
		"listener.name.sasl_ssl.ssl.keystore.location=" + filepath.Join(dir, "broker.pem"),
		"log.dirs=" + filepath.Join(dir, "data"),
		"num.partitions=1",
		"default.replication.factor=1",
		"offsets.topic.replication.factor=1",
		"offsets.topic.num.partitions=5",
		"transaction.state.log.replication.factor=1",
		"transaction.state.log.min.isr=1",
		"transaction.state.log.num.partitions=5",
		"share.coordinator.state.topic.replication.factor=1",
		"share.coordinator.state.topic.min.isr=1",
		"share.coordinator.state.topic.num.partitions=5",
		"group.initial.rebalance.delay.ms=0",
		"auto.create.topics.enable=false",
		"delete.topic.enable=true",
	}
	if err := os.WriteFile(filepath.Join(dir, "server.properties"), []byte(strings.Join(props, "\n")+"\n"), 0o600); err != nil {
		return err
	}
	// Kafka 4 logs through log4j2; 3.9 still reads a log4j 1 file for its
	// own controller of log levels. Both go to the process's stdout, which
	// is the broker log.
	log4j2 := `status = warn
appender.out.type = Console
appender.out.name = out
appender.out.layout.type = PatternLayout
appender.out.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = info
rootLogger.appenderRef.out.ref = out
logger.request.name = kafka.request.logger
logger.request.level = warn
logger.cleaner.name = kafka.log.LogCleaner
logger.cleaner.level = warn
`
	log4j1 := "log4j.rootLogger=INFO, out\nlog4j.appender.out=org.apache.log4j.ConsoleAppender\nlog4j.appender.out.layout=org.apache.log4j.PatternLayout\nlog4j.appender.out.layout.ConversionPattern=[%d] %p %m (%c)%n\n"
	if err := os.WriteFile(filepath.Join(dir, "log4j2.properties"), []byte(log4j2), 0o644); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "log4j.properties"), []byte(log4j1), 0o644)
}

// writePKI makes a CA and a serving certificate for 127.0.0.1 and
// localhost, signed by it, for the SASL_SSL listener. The broker reads its
// key and chain from one PEM file. A sandbox can run for days, so they
// last 30 days.
func (b *Broker) writePKI() error {
	now := time.Now().Add(-time.Hour)
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "lagscale-test-kafka-ca"},
		NotBefore: now, NotAfter: now.Add(30 * 24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return err
	}
	caCert, err := x509.ParseCertificate(caDER)
	if err != nil {
		return err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "kafka"},
		NotBefore: now, NotAfter: now.Add(30 * 24 * time.Hour),
		KeyUsage:    x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:    []string{"localhost"}, IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &key.PublicKey, caKey)
	if err != nil {
		return err
	}
	pkcs8, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return err
	}
	b.CAPEM = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER})
	b.CAFile = filepath.Join(b.cfg.Dir, "ca.crt")
	if err := os.WriteFile(b.CAFile, b.CAPEM, 0o644); err != nil {
		return err
	}
	bundle := append(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: pkcs8}),
		pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})...)
	return os.WriteFile(filepath.Join(b.cfg.Dir, "broker.pem"), bundle, 0o600)
}

// FindJava finds java: $JAVA_HOME/bin/java, else java on PATH. Without
// one the error names the fix.
func FindJava() (string, error) {
	if home := os.Getenv("JAVA_HOME"); home != "" {
		if p := filepath.Join(home, "bin", "java"); isFile(p) {
			return p, nil
		}
	}
	p, err := exec.LookPath("java")
	if err != nil {
		return "", errors.New("kafkabroker: Apache Kafka needs a JDK 17 or newer: no java on PATH and no $JAVA_HOME/bin/java; install one, then run `make kafka`")
	}
	return p, nil
}

// LibsDir returns binDir/kafka/<version>/libs, or an error naming `make
// kafka` when it has not resolved that version there.
func LibsDir(binDir, version string) (string, error) {
	libs := filepath.Join(binDir, "kafka", version, "libs")
	if !isFile(filepath.Join(libs, ".resolved")) || !isFile(filepath.Join(libs, "kafka_2.13-"+version+".jar")) {
		return "", fmt.Errorf("kafkabroker: Apache Kafka %s is not resolved in %s: run `make kafka` (it fetches the jars with Maven)", version, libs)
	}
	return libs, nil
}

func isFile(p string) bool {
	st, err := os.Stat(p)
	return err == nil && !st.IsDir()
}

func randomHex(n int) (string, error) {
	raw := make([]byte, n)
	if _, err := rand.Read(raw); err != nil {
		return "", err
	}
	return hex.EncodeToString(raw), nil
}

// freeAddrs returns n 127.0.0.1 addresses whose ports were free a moment
// ago, all different and none in taken: each port is held until all are
// chosen, since a port just closed may be the kernel's next answer (two
// listeners of one broker on one port fail its configuration check).
func freeAddrs(n int, taken map[string]bool) ([]string, error) {
	var out []string
	for len(out) < n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		defer l.Close()
		if a := l.Addr().String(); !taken[a] {
			out = append(out, a)
		}
	}
	return out, nil
}
