package contract

import (
	"strings"
	"testing"
	"time"
)

func TestConnectionOptions(t *testing.T) {
	tests := []struct {
		name    string
		conn    Connection
		wantErr string // substring; empty means success
	}{
		{name: "plaintext", conn: Connection{BootstrapServers: []string{"k:9092"}}},
		{name: "scram", conn: Connection{BootstrapServers: []string{"k:9092"}, SASL: &SASL{Mechanism: "scram-sha-512", Username: "u", Password: "s3cret"}}},
		{name: "no servers", conn: Connection{}, wantErr: "no bootstrap servers"},
		{name: "unknown mechanism", conn: Connection{BootstrapServers: []string{"k:9092"}, SASL: &SASL{Mechanism: "GSSAPI", Password: "s3cret"}}, wantErr: `unsupported SASL mechanism "GSSAPI"`},
		{name: "CA without a certificate", conn: Connection{BootstrapServers: []string{"k:9092"}, TLS: &TLS{CA: []byte("not pem")}}, wantErr: "TLS CA: no PEM certificate found"},
		{name: "key without certificate", conn: Connection{BootstrapServers: []string{"k:9092"}, TLS: &TLS{Key: []byte("x")}}, wantErr: "TLS client certificate"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			opts, err := tt.conn.Options()
			if tt.wantErr == "" {
				if err != nil || len(opts) == 0 {
					t.Fatalf("Options() = %d options, %v; want options and no error", len(opts), err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("error = %v, want it to contain %q", err, tt.wantErr)
			}
			if strings.Contains(err.Error(), "s3cret") {
				t.Errorf("error leaks the password: %q", err)
			}
		})
	}
}

func TestResetOffsetAndIsolationLevel(t *testing.T) {
	now := time.Now()
	for _, p := range []string{ResetEarliest, ResetLatest, DefaultOffsetReset} {
		if _, err := ResetOffset(p, now); err != nil {
			t.Errorf("ResetOffset(%q) = %v", p, err)
		}
	}
	if _, err := ResetOffset("smallest", now); err == nil || !strings.Contains(err.Error(), `KAFKA_AUTO_OFFSET_RESET="smallest": expected earliest or latest`) {
		t.Errorf("ResetOffset(smallest) error = %v", err)
	}
	for _, l := range []string{"", IsolationReadCommitted, IsolationReadUncommitted} {
		if _, err := IsolationLevel(l); err != nil {
			t.Errorf("IsolationLevel(%q) = %v", l, err)
		}
	}
	if _, err := IsolationLevel("read_dirty"); err == nil || !strings.Contains(err.Error(), `KAFKA_ISOLATION_LEVEL="read_dirty"`) {
		t.Errorf("IsolationLevel(read_dirty) error = %v", err)
	}
}
