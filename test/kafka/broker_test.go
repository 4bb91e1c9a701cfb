//go:build kafka

package kafka

import (
	"context"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/lagscale/lagscale/internal/testkit"
	"github.com/lagscale/lagscale/pkg/contract"
)

// TestBrokerStart starts each Apache Kafka version, reports how long the
// start took, and checks what the helper promises beyond answering on
// every listener (StartApache waits for that): share groups are on where
// the version has them.
func TestBrokerStart(t *testing.T) {
	for _, v := range []string{testkit.KafkaVersion, testkit.KafkaClassicVersion} {
		t.Run(v, func(t *testing.T) {
			a := testkit.StartApache(t, v)
			t.Logf("broker start: %s (storage format + JVM start until PLAINTEXT, SASL_PLAINTEXT and SASL_SSL answer)", a.StartTime.Round(time.Millisecond))
			cl := testkit.Client(t, a)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			req := kmsg.NewPtrApiVersionsRequest()
			req.ClientSoftwareName, req.ClientSoftwareVersion = "lagscale-test", "0"
			resp, err := req.RequestWith(ctx, cl)
			if err != nil {
				t.Fatal(err)
			}
			share := int16(0)
			for _, f := range resp.FinalizedFeatures {
				if f.Name == "share.version" {
					share = f.MaxVersionLevel
				}
			}
			if want := testkit.SupportsShareGroups(v); want != (share >= 1) {
				t.Fatalf("Apache Kafka %s: finalized share.version %d, want share groups on = %v", v, share, want)
			}
			// The SASL listeners are reached through pkg/contract's
			// connection setup: the right password answers, a wrong one
			// is refused, so the check above really authenticated.
			for _, protocol := range []string{contract.ProtocolSASLPlaintext, contract.ProtocolSASLSSL} {
				conn, err := a.Connection(protocol)
				if err != nil {
					t.Fatal(err)
				}
				if err := pingWith(ctx, conn); err != nil {
					t.Errorf("%s as the broker's user: %v", protocol, err)
				}
				wrong := *conn.SASL
				wrong.Password += "-wrong"
				conn.SASL = &wrong
				if err := pingWith(ctx, conn); err == nil {
					t.Errorf("%s with a wrong password answered; want it refused", protocol)
				}
			}
		})
	}
}

// pingWith sends one Metadata request over a client built from conn.
func pingWith(ctx context.Context, conn contract.Connection) error {
	opts, err := conn.Options()
	if err != nil {
		return err
	}
	cl, err := kgo.NewClient(append(opts, kgo.RequestRetries(0))...)
	if err != nil {
		return err
	}
	defer cl.Close()
	_, err = kmsg.NewPtrMetadataRequest().RequestWith(ctx, cl)
	return err
}
