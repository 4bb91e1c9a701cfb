package lag

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
)

// testPKI is a throwaway CA and a server certificate for 127.0.0.1.
type testPKI struct {
	caPEM  []byte
	server tls.Certificate
}

func newTestPKI(t *testing.T) testPKI {
	t.Helper()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatalf("CA key: %v", err)
	}
	ca := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "lagscale test CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  true,
		KeyUsage:              x509.KeyUsageCertSign,
		BasicConstraintsValid: true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, ca, ca, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatalf("CA cert: %v", err)
	}
	caCert, err := x509.ParseCertificate(caDER)
	if err != nil {
		t.Fatalf("parse CA: %v", err)
	}
	srvKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatalf("server key: %v", err)
	}
	srv := &x509.Certificate{
		SerialNumber: big.NewInt(2),
		Subject:      pkix.Name{CommonName: "kfake"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
		DNSNames:     []string{"localhost"},
	}
	srvDER, err := x509.CreateCertificate(rand.Reader, srv, caCert, &srvKey.PublicKey, caKey)
	if err != nil {
		t.Fatalf("server cert: %v", err)
	}
	return testPKI{
		caPEM:  pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}),
		server: tls.Certificate{Certificate: [][]byte{srvDER}, PrivateKey: srvKey},
	}
}

func TestTLSAndSCRAM(t *testing.T) {
	const (
		user     = "lagscale"
		password = "correct-horse-battery-staple"
		wrong    = "not-the-password-4711"
	)
	pki := newTestPKI(t)
	kf := newKafka(t,
		kfake.TLS(&tls.Config{Certificates: []tls.Certificate{pki.server}, MinVersion: tls.VersionTLS12}),
		kfake.EnableSASL(),
		kfake.Superuser(MechanismScramSHA512, user, password),
		kfake.SeedTopics(2, "secure"),
	)
	addrs := kf.ListenAddrs()
	e := newEngine(t, Options{RequestTimeout: 3 * time.Second})

	good := subscription("good", addrs, "g", "secure")
	good.Cluster.TLS = &TLSConfig{CA: pki.caPEM}
	good.Cluster.SASL = &SASLConfig{Mechanism: MechanismScramSHA512, Username: user, Password: password}
	e.Register(good)
	mustPoll(t, e, good)
	s := mustSnapshot(t, e, good.Consumer)
	if !s.Reachable || s.Stale || s.PartitionCount != 2 || s.Error != "" {
		t.Fatalf("snapshot over TLS and SCRAM-SHA-512 = %+v, want reachable with 2 partitions", s)
	}

	bad := good
	bad.Consumer = key("bad")
	bad.Cluster.SASL = &SASLConfig{Mechanism: MechanismScramSHA512, Username: user, Password: wrong}
	if bad.Cluster.ID() == good.Cluster.ID() {
		t.Fatal("a different password must be a different cluster identity")
	}
	e.Register(bad)
	err := e.Poll(t.Context(), bad.Cluster.ID())
	if err == nil {
		t.Fatal("poll with a wrong password succeeded")
	}
	s = mustSnapshot(t, e, bad.Consumer)
	st, _ := e.ClusterStatus(bad.Cluster.ID())
	t.Logf("wrong password: %s", s.Error)
	if s.Reachable || !s.Stale || s.Error == "" || st.Reachable {
		t.Fatalf("snapshot with a wrong password = %+v (cluster %+v), want unreachable with an error", s, st)
	}
	if !strings.Contains(strings.ToUpper(s.Error), "SASL") && !strings.Contains(strings.ToLower(s.Error), "auth") {
		t.Errorf("error %q does not say authentication failed", s.Error)
	}
	for _, secret := range []string{wrong, password} {
		if strings.Contains(s.Error, secret) || strings.Contains(st.Error, secret) || strings.Contains(err.Error(), secret) {
			t.Fatalf("error leaks a password: %q", s.Error)
		}
	}
	// The good cluster is untouched by the bad one.
	if s := mustSnapshot(t, e, good.Consumer); !s.Reachable {
		t.Fatalf("good consumer became unreachable: %+v", s)
	}
}

func TestTLSUntrustedBroker(t *testing.T) {
	pki := newTestPKI(t)
	other := newTestPKI(t)
	kf := newKafka(t,
		kfake.TLS(&tls.Config{Certificates: []tls.Certificate{pki.server}, MinVersion: tls.VersionTLS12}),
		kfake.SeedTopics(1, "secure"),
	)
	addrs := kf.ListenAddrs()
	e := newEngine(t, Options{RequestTimeout: 2 * time.Second})

	tests := []struct {
		name      string
		tls       *TLSConfig
		reachable bool
	}{
		{name: "trusted CA", tls: &TLSConfig{CA: pki.caPEM}, reachable: true},
		{name: "other CA", tls: &TLSConfig{CA: other.caPEM}},
		{name: "insecure skip verify", tls: &TLSConfig{InsecureSkipVerify: true}, reachable: true},
		{name: "garbage CA", tls: &TLSConfig{CA: []byte("not pem")}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sub := subscription(tt.name, addrs, "g", "secure")
			sub.Cluster.TLS = tt.tls
			e.Register(sub)
			_ = e.Poll(t.Context(), sub.Cluster.ID())
			s := mustSnapshot(t, e, sub.Consumer)
			if s.Reachable != tt.reachable || (!tt.reachable && s.Error == "") {
				t.Fatalf("snapshot = %+v, want reachable %v", s, tt.reachable)
			}
			t.Logf("error: %q", s.Error)
		})
	}
}
