package handler_test

import (
	"strings"
	"testing"

	"github.com/lagscale/lagscale/pkg/handler"
)

func TestConfigFromEnv(t *testing.T) {
	base := map[string]string{
		"KAFKA_BOOTSTRAP_SERVERS": "kafka-0:9092, kafka-1:9092",
		"KAFKA_TOPICS":            "orders,payments",
		"KAFKA_CONSUMER_GROUP":    "billing",
	}
	tests := []struct {
		name    string
		set     map[string]string
		unset   []string
		wantErr string // substring; empty means success
		check   func(t *testing.T, c handler.Config)
	}{
		{name: "minimal plaintext", check: func(t *testing.T, c handler.Config) {
			if len(c.Brokers) != 2 || c.Brokers[1] != "kafka-1:9092" || len(c.Topics) != 2 || c.Group != "billing" ||
				c.SecurityProtocol != "PLAINTEXT" || c.AutoOffsetReset != "latest" || c.HTTPAddr != ":8080" {
				t.Errorf("unexpected config %+v", c)
			}
		}},
		{name: "missing topics", unset: []string{"KAFKA_TOPICS"}, wantErr: "KAFKA_TOPICS is not set: expected a comma-separated list of topics"},
		{name: "empty topics list", set: map[string]string{"KAFKA_TOPICS": " , "}, wantErr: "KAFKA_TOPICS is not set"},
		{name: "missing brokers", unset: []string{"KAFKA_BOOTSTRAP_SERVERS"}, wantErr: "KAFKA_BOOTSTRAP_SERVERS is not set"},
		{name: "broker without port", set: map[string]string{"KAFKA_BOOTSTRAP_SERVERS": "kafka-0"}, wantErr: `KAFKA_BOOTSTRAP_SERVERS contains "kafka-0": expected host:port`},
		{name: "broker with bad port", set: map[string]string{"KAFKA_BOOTSTRAP_SERVERS": "kafka-0:http"}, wantErr: "expected a numeric port"},
		{name: "missing group", unset: []string{"KAFKA_CONSUMER_GROUP"}, wantErr: "KAFKA_CONSUMER_GROUP is not set"},
		{name: "unknown protocol", set: map[string]string{"KAFKA_SECURITY_PROTOCOL": "TLS"}, wantErr: `KAFKA_SECURITY_PROTOCOL="TLS": expected one of PLAINTEXT, SSL, SASL_PLAINTEXT, SASL_SSL`},
		{name: "sasl without mechanism", set: map[string]string{"KAFKA_SECURITY_PROTOCOL": "SASL_SSL"}, wantErr: "KAFKA_SASL_MECHANISM is not set but KAFKA_SECURITY_PROTOCOL is SASL_SSL"},
		{name: "sasl unknown mechanism", set: map[string]string{"KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT", "KAFKA_SASL_MECHANISM": "GSSAPI"}, wantErr: `KAFKA_SASL_MECHANISM="GSSAPI"`},
		{name: "sasl without password", set: map[string]string{"KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT", "KAFKA_SASL_MECHANISM": "SCRAM-SHA-512", "KAFKA_SASL_USERNAME": "u"}, wantErr: "KAFKA_SASL_PASSWORD is not set"},
		{name: "sasl complete", set: map[string]string{"KAFKA_SECURITY_PROTOCOL": "sasl_plaintext", "KAFKA_SASL_MECHANISM": "scram-sha-256", "KAFKA_SASL_USERNAME": "u", "KAFKA_SASL_PASSWORD": "s3cret"},
			check: func(t *testing.T, c handler.Config) {
				if c.SecurityProtocol != "SASL_PLAINTEXT" || c.SASLMechanism != "SCRAM-SHA-256" {
					t.Errorf("unexpected config %+v", c)
				}
				if _, err := c.ClientOptions(); err != nil {
					t.Errorf("ClientOptions: %v", err)
				}
			}},
		{name: "cert without key", set: map[string]string{"KAFKA_SECURITY_PROTOCOL": "SSL", "KAFKA_TLS_CERT_FILE": "/tls/tls.crt"}, wantErr: "only one of KAFKA_TLS_CERT_FILE and KAFKA_TLS_KEY_FILE is set"},
		{name: "bad insecure flag", set: map[string]string{"KAFKA_TLS_INSECURE_SKIP_VERIFY": "yes please"}, wantErr: "KAFKA_TLS_INSECURE_SKIP_VERIFY"},
		{name: "bad offset reset", set: map[string]string{"KAFKA_AUTO_OFFSET_RESET": "smallest"}, wantErr: `KAFKA_AUTO_OFFSET_RESET="smallest": expected earliest or latest`},
		{name: "dead letter, consumer, http addr", set: map[string]string{"LAGSCALE_DEAD_LETTER_TOPIC": "orders-dlt", "LAGSCALE_CONSUMER": "shop/billing", "LAGSCALE_HTTP_ADDR": ":9090"},
			check: func(t *testing.T, c handler.Config) {
				if c.DeadLetterTopic != "orders-dlt" || c.Consumer != "shop/billing" || c.HTTPAddr != ":9090" {
					t.Errorf("unexpected config %+v", c)
				}
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := map[string]string{}
			for k, v := range base {
				env[k] = v
			}
			for _, k := range tt.unset {
				delete(env, k)
			}
			for k, v := range tt.set {
				env[k] = v
			}
			c, err := handler.ConfigFromEnv(func(k string) string { return env[k] })
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error = %v, want it to contain %q", err, tt.wantErr)
				}
				if strings.Contains(err.Error(), "\n") {
					t.Errorf("error spans several lines: %q", err)
				}
				if strings.Contains(err.Error(), "s3cret") {
					t.Errorf("error leaks the password: %q", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("unexpected error: %v", err)
			}
			if tt.check != nil {
				tt.check(t, c)
			}
		})
	}
}

func TestRunMissingTopicsNamesTheVariable(t *testing.T) {
	env := map[string]string{"KAFKA_BOOTSTRAP_SERVERS": "localhost:9092", "KAFKA_CONSUMER_GROUP": "g"}
	_, err := handler.New(noop, handler.WithGetenv(func(k string) string { return env[k] }))
	if err == nil || !strings.Contains(err.Error(), "KAFKA_TOPICS") || strings.Contains(err.Error(), "\n") {
		t.Fatalf("error = %v, want one line naming KAFKA_TOPICS", err)
	}
}
