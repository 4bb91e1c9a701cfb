package produce

import (
	"bytes"
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
)

func TestRunProducesTheRequestedCount(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var out bytes.Buffer
	res, err := Run(context.Background(), Config{
		Brokers: c.ListenAddrs(), Topic: "load", Rate: 2000, Count: 1500, Size: 64, Keys: 100,
		CreateTopic: true, Partitions: 6, ReportEvery: 200 * time.Millisecond,
	}, &out)
	if err != nil {
		t.Fatalf("Run: %v\n%s", err, out.String())
	}
	if res.Sent != 1500 || res.Acked != 1500 || res.Failed != 0 {
		t.Fatalf("result %+v, want 1500 sent and acked", res)
	}
	if !strings.Contains(out.String(), "done: sent=1500 acked=1500 failed=0") || !strings.Contains(out.String(), "achieved=") {
		t.Errorf("output lacks progress or summary:\n%s", out.String())
	}

	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ends, err := kadm.NewClient(cl).ListEndOffsets(context.Background(), "load")
	if err != nil {
		t.Fatal(err)
	}
	var total int64
	parts := 0
	ends.Each(func(o kadm.ListedOffset) {
		total += o.Offset
		if o.Offset > 0 {
			parts++
		}
	})
	if total != 1500 || parts != 6 {
		t.Errorf("topic holds %d records in %d non-empty partitions, want 1500 in 6", total, parts)
	}
}

func TestConfigValidate(t *testing.T) {
	ok := Config{Brokers: []string{"b:9092"}, Topic: "t", Rate: 1, Count: 1}
	tests := []struct {
		name    string
		mut     func(*Config)
		wantErr string
	}{
		{"valid", func(*Config) {}, ""},
		{"no brokers", func(c *Config) { c.Brokers = nil }, "--brokers"},
		{"no topic", func(c *Config) { c.Topic = "" }, "--topic"},
		{"no end", func(c *Config) { c.Count = 0 }, "--duration or --count"},
		{"create without partitions", func(c *Config) { c.CreateTopic = true }, "--partitions"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := ok
			tt.mut(&c)
			err := c.Validate()
			if (tt.wantErr == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tt.wantErr)) {
				t.Errorf("Validate() = %v, want %q", err, tt.wantErr)
			}
		})
	}
}

// TestRunBadInputSaysWhatToDo tries what a new user tries first: a topic
// that does not exist yet, and a broker address where nothing listens. Each
// fails at once with one error naming the fix, before any record is sent.
func TestRunBadInputSaysWhatToDo(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// An address that was free a moment ago: nothing listens there.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := ln.Addr().String()
	ln.Close()

	tests := []struct {
		name    string
		brokers []string
		want    string
	}{
		{"missing topic", c.ListenAddrs(), `topic "orders" does not exist on ` + c.ListenAddrs()[0] + `: rerun with --create-topic`},
		{"wrong broker", []string{closed}, "cannot reach Kafka at " + closed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out bytes.Buffer
			res, err := Run(context.Background(), Config{Brokers: tt.brokers, Topic: "orders", Rate: 100, Count: 250, Size: 10}, &out)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %v, want one containing %q", err, tt.want)
			}
			if strings.Contains(err.Error(), "\n") || res.Sent != 0 {
				t.Fatalf("want one line and no record sent, got sent=%d: %q", res.Sent, err)
			}
		})
	}
}
