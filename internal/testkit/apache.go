package testkit

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl/scram"
)

// Apache Kafka versions that `make kafka` resolves into bin/kafka/<version>
// (KAFKA_VERSIONS in the Makefile names the same two).
const (
	// KafkaVersion is the newest 4.x that resolves from Maven Central.
	KafkaVersion = "4.4.0"
	// KafkaClassicVersion is the newest 3.9.x: classic-protocol clusters
	// are still common.
	KafkaClassicVersion = "3.9.1"
)

// ScramMechanism is the SASL mechanism of the SASL listeners.
const ScramMechanism = "SCRAM-SHA-512"

// Apache is a single-node Apache Kafka (KRaft, broker and controller in
// one JVM) run from the jars `make kafka` resolved. It listens on
// PLAINTEXT, SASL_PLAINTEXT (SCRAM-SHA-512) and SASL_SSL (SCRAM-SHA-512 over
// TLS with a CA generated at start), all on 127.0.0.1 and free ports. It is
// stopped by its PID when the test ends, failed or not; on failure the
// broker's log is printed.
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

	t          testing.TB
	dir, libs  string
	java       string
	controller string
	adm        *kadm.Client

	mu   sync.Mutex
	proc *brokerProc
}

type brokerProc struct {
	cmd    *exec.Cmd
	exited chan struct{}
}

// StartApache starts Apache Kafka version and waits until it answers on
// every listener. A missing JDK or missing jars fail the test with a
// message naming `make kafka`; nothing is skipped.
func StartApache(t testing.TB, version string) *Apache {
	t.Helper()
	began := time.Now()
	a := &Apache{Version: version, t: t, dir: t.TempDir(), User: "lagscale"}
	a.java = javaBinary(t)
	a.libs = KafkaLibs(t, version)
	a.Password = randomHex(t, 12)
	a.Plain, a.SASLPlain, a.SASLSSL, a.controller = FreeAddr(t), FreeAddr(t), FreeAddr(t), FreeAddr(t)
	a.writePKI(t)
	a.writeConfig(t)
	a.format(t)
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

// SCRAM returns the franz-go SASL option for the broker's user.
func (a *Apache) SCRAM() kgo.Opt {
	return kgo.SASL(scram.Auth{User: a.User, Pass: a.Password}.AsSha512Mechanism())
}

// TLS returns a TLS config that trusts the broker's CA.
func (a *Apache) TLS() *tls.Config {
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(a.CAPEM)
	return &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
}

// Start launches the broker (again, after Stop: same ports, same data)
// and waits until it answers on every listener.
func (a *Apache) Start() {
	t := a.t
	t.Helper()
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.proc != nil {
		t.Fatalf("Apache Kafka %s is already running", a.Version)
	}
	logf, err := os.OpenFile(a.logPath(), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	cmd := exec.Command(a.java, a.jvmArgs("kafka.Kafka", filepath.Join(a.dir, "server.properties"))...)
	cmd.Stdout, cmd.Stderr = logf, logf
	// Its own process group, so that a Ctrl-C of `go test` does not reach
	// it before the cleanup does; the cleanup stops it by PID.
	// Pdeathsig: a test binary killed by its -timeout takes the JVM along.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting Apache Kafka %s: %v", a.Version, err)
	}
	p := &brokerProc{cmd: cmd, exited: make(chan struct{})}
	go func() { _ = cmd.Wait(); close(p.exited) }()
	a.proc = p
	a.waitReady(p)
}

// Stop stops the broker by its PID: SIGTERM for a clean shutdown, SIGKILL
// after 30 s. It does nothing when the broker is not running.
func (a *Apache) Stop() {
	a.mu.Lock()
	defer a.mu.Unlock()
	p := a.proc
	if p == nil {
		return
	}
	a.proc = nil
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(30 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.exited
	}
}

// waitReady waits until every listener answers a Metadata request (the
// SASL ones authenticated), failing with the broker's log when the JVM
// exits or two minutes pass.
func (a *Apache) waitReady(p *brokerProc) {
	t := a.t
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	listeners := []struct {
		name string
		opts []kgo.Opt
	}{
		{"PLAINTEXT", []kgo.Opt{kgo.SeedBrokers(a.Plain)}},
		{"SASL_PLAINTEXT", []kgo.Opt{kgo.SeedBrokers(a.SASLPlain), a.SCRAM()}},
		{"SASL_SSL", []kgo.Opt{kgo.SeedBrokers(a.SASLSSL), a.SCRAM(), kgo.DialTLSConfig(a.TLS())}},
	}
	for _, l := range listeners {
		for {
			err := pingListener(l.opts)
			if err == nil {
				break
			}
			select {
			case <-p.exited:
				a.dumpLog()
				t.Fatalf("Apache Kafka %s exited before its %s listener answered (%v); its log is above", a.Version, l.name, err)
			default:
			}
			if time.Now().After(deadline) {
				a.dumpLog()
				t.Fatalf("Apache Kafka %s: %s listener not ready after 2m: %v; its log is above", a.Version, l.name, err)
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
}

func pingListener(opts []kgo.Opt) error {
	cl, err := kgo.NewClient(append(opts, kgo.RequestRetries(0), kgo.DialTimeout(2*time.Second))...)
	if err != nil {
		return err
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
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

func (a *Apache) logPath() string { return filepath.Join(a.dir, "broker.log") }

// dumpLog prints the broker's log (the last 400 lines) to the test output.
func (a *Apache) dumpLog() {
	b, err := os.ReadFile(a.logPath())
	if err != nil {
		a.t.Logf("Apache Kafka %s log: %v", a.Version, err)
		return
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > 400 {
		lines = lines[len(lines)-400:]
	}
	a.t.Logf("Apache Kafka %s log (%s, last %d lines):\n%s", a.Version, a.logPath(), len(lines), strings.Join(lines, "\n"))
}

// jvmArgs are the java arguments to run main with args: a bounded heap,
// the resolved jars and the log4j2 configuration written by writeConfig.
// C1 only and the serial collector, because the broker serves small tests
// on a machine with few shared cores.
func (a *Apache) jvmArgs(main string, args ...string) []string {
	return append([]string{
		"-Xms128m", "-Xmx512m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1",
		"-Djava.awt.headless=true",
		"-Dlog4j2.configurationFile=" + filepath.Join(a.dir, "log4j2.properties"),
		"-Dlog4j.configuration=file:" + filepath.Join(a.dir, "log4j.properties"),
		"-cp", filepath.Join(a.libs, "*"),
		main,
	}, args...)
}

// format runs kafka.tools.StorageTool: a new cluster id, the SCRAM user,
// and on 4.x the share.version feature that turns share groups on.
func (a *Apache) format(t testing.TB) {
	t.Helper()
	// A cluster id is 16 random bytes in URL-safe base64; one that starts
	// with '-' would read as an option to StorageTool's parser.
	var id string
	for id == "" || id[0] == '-' || id[0] == '_' {
		b := make([]byte, 16)
		if _, err := rand.Read(b); err != nil {
			t.Fatal(err)
		}
		id = base64.RawURLEncoding.EncodeToString(b)
	}
	args := []string{"format", "-t", id,
		"-c", filepath.Join(a.dir, "server.properties"),
		"--add-scram", ScramMechanism + "=[name=" + a.User + ",password=" + a.Password + "]"}
	if SupportsShareGroups(a.Version) {
		args = append(args, "--feature", "share.version=1")
	}
	out, err := exec.Command(a.java, a.jvmArgs("kafka.tools.StorageTool", args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("formatting Apache Kafka %s storage (kafka.tools.StorageTool): %v\n%s", a.Version, err, out)
	}
}

// SupportsShareGroups reports whether version has share groups (KIP-932)
// that the share.version feature turns on: 4.1 and later. 4.0 had only an
// early-access preview behind an unstable API flag.
func SupportsShareGroups(version string) bool {
	return !strings.HasPrefix(version, "3.") && !strings.HasPrefix(version, "4.0.")
}

func (a *Apache) writeConfig(t testing.TB) {
	t.Helper()
	jaas := "org.apache.kafka.common.security.scram.ScramLoginModule required;"
	props := []string{
		"process.roles=broker,controller",
		"node.id=1",
		"controller.quorum.voters=1@" + a.controller,
		"controller.listener.names=CONTROLLER",
		"listeners=PLAINTEXT://" + a.Plain + ",SASL_PLAINTEXT://" + a.SASLPlain + ",SASL_SSL://" + a.SASLSSL + ",CONTROLLER://" + a.controller,
		"advertised.listeners=PLAINTEXT://" + a.Plain + ",SASL_PLAINTEXT://" + a.SASLPlain + ",SASL_SSL://" + a.SASLSSL,
		"listener.security.protocol.map=PLAINTEXT:PLAINTEXT,SASL_PLAINTEXT:SASL_PLAINTEXT,SASL_SSL:SASL_SSL,CONTROLLER:PLAINTEXT",
		"inter.broker.listener.name=PLAINTEXT",
		"sasl.enabled.mechanisms=" + ScramMechanism,
		"listener.name.sasl_plaintext.scram-sha-512.sasl.jaas.config=" + jaas,
		"listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config=" + jaas,
		"listener.name.sasl_ssl.ssl.keystore.type=PEM",
		"listener.name.sasl_ssl.ssl.keystore.location=" + filepath.Join(a.dir, "broker.pem"),
		"log.dirs=" + filepath.Join(a.dir, "data"),
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
	if err := os.WriteFile(filepath.Join(a.dir, "server.properties"), []byte(strings.Join(props, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
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
	if err := os.WriteFile(filepath.Join(a.dir, "log4j2.properties"), []byte(log4j2), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(a.dir, "log4j.properties"), []byte(log4j1), 0o644); err != nil {
		t.Fatal(err)
	}
}

// writePKI makes a CA and a serving certificate for 127.0.0.1 and
// localhost, signed by it, for the SASL_SSL listener. The broker reads its
// key and chain from one PEM file.
func (a *Apache) writePKI(t testing.TB) {
	t.Helper()
	now := time.Now().Add(-time.Hour)
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "lagscale-test-kafka-ca"},
		NotBefore: now, NotAfter: now.Add(48 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, err := x509.ParseCertificate(caDER)
	if err != nil {
		t.Fatal(err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "kafka"},
		NotBefore: now, NotAfter: now.Add(48 * time.Hour),
		KeyUsage:    x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:    []string{"localhost"}, IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	pkcs8, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	a.CAPEM = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER})
	a.CAFile = filepath.Join(a.dir, "ca.crt")
	if err := os.WriteFile(a.CAFile, a.CAPEM, 0o644); err != nil {
		t.Fatal(err)
	}
	bundle := append(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: pkcs8}),
		pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})...)
	if err := os.WriteFile(filepath.Join(a.dir, "broker.pem"), bundle, 0o600); err != nil {
		t.Fatal(err)
	}
}

// javaBinary finds java: $JAVA_HOME/bin/java, else java on PATH.
func javaBinary(t testing.TB) string {
	t.Helper()
	if home := os.Getenv("JAVA_HOME"); home != "" {
		if p := filepath.Join(home, "bin", "java"); isFile(p) {
			return p
		}
	}
	p, err := exec.LookPath("java")
	if err != nil {
		t.Fatalf("Apache Kafka needs a JDK 17 or newer: no java on PATH and no $JAVA_HOME/bin/java; install one, then run `make kafka`")
	}
	return p
}

// KafkaLibs returns bin/kafka/<version>/libs of the module, failing the
// test with the make target to run when `make kafka` has not resolved it.
func KafkaLibs(t testing.TB, version string) string {
	t.Helper()
	root, err := moduleRoot()
	if err != nil {
		t.Fatalf("finding the module root for bin/kafka: %v", err)
	}
	libs := filepath.Join(root, "bin", "kafka", version, "libs")
	if !isFile(filepath.Join(libs, ".resolved")) || !isFile(filepath.Join(libs, "kafka_2.13-"+version+".jar")) {
		t.Fatalf("Apache Kafka %s is not resolved in %s: run `make kafka` (it fetches the jars with Maven)", version, libs)
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

func isFile(p string) bool {
	st, err := os.Stat(p)
	return err == nil && !st.IsDir()
}

func randomHex(t testing.TB, n int) string {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}
