// Package nodeproducer_test runs the Node.js example producer against an
// in-process kfake broker and reads what it wrote with franz-go.
package nodeproducer_test

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/lagscale/lagscale/internal/testkit"
)

// The producer sends COUNT JSON events keyed by customer, each customer's
// events on one partition and in id order, and exits 0 printing the count.
func TestNodeProducerKeyedJSON(t *testing.T) {
	testkit.NPMInstall(t, "../../sdk/node") // the example links it
	testkit.NPMInstall(t, ".")
	const parts, count, customers = 4, 600, 12
	k := testkit.NewKafka(t, parts, "orders")
	cmd := exec.Command("node", "index.js")
	cmd.Env = append(os.Environ(), "KAFKA_BOOTSTRAP_SERVERS="+strings.Join(k.Addrs, ","), "TOPIC=orders",
		"RATE=2000", "COUNT=600", "CUSTOMERS=12")
	p := testkit.Start(t, cmd)
	if code := p.Wait(t); code != 0 {
		t.Fatalf("producer exited %d", code)
	}
	if got := strings.TrimSpace(p.Stdout()); got != "sent 600" {
		t.Fatalf("producer printed %q, want %q", got, "sent 600")
	}

	cl, err := kgo.NewClient(kgo.SeedBrokers(k.Addrs...), kgo.ConsumeTopics("orders"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	type event struct {
		ID       int     `json:"id"`
		Customer string  `json:"customer"`
		Amount   float64 `json:"amount"`
		At       string  `json:"at"`
	}
	partitionOf := map[string]int32{}
	lastID := map[string]int{}
	seen := map[int]bool{}
	for len(seen) < count {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("read %d of %d events", len(seen), count)
		}
		fs.EachRecord(func(r *kgo.Record) {
			var e event
			if err := json.Unmarshal(r.Value, &e); err != nil {
				t.Fatalf("record %d/%d is not JSON: %v: %q", r.Partition, r.Offset, err, r.Value)
			}
			if string(r.Key) != e.Customer {
				t.Fatalf("record key %q, event customer %q", r.Key, e.Customer)
			}
			if p, ok := partitionOf[e.Customer]; ok && p != r.Partition {
				t.Fatalf("%s on partitions %d and %d", e.Customer, p, r.Partition)
			}
			partitionOf[e.Customer] = r.Partition
			if last, ok := lastID[e.Customer]; ok && e.ID <= last {
				t.Fatalf("%s: event %d after %d", e.Customer, e.ID, last)
			}
			lastID[e.Customer] = e.ID
			if _, err := time.Parse(time.RFC3339, e.At); err != nil {
				t.Fatalf("event %d: at %q: %v", e.ID, e.At, err)
			}
			seen[e.ID] = true
		})
	}
	if len(partitionOf) != customers {
		t.Fatalf("%d customers, want %d", len(partitionOf), customers)
	}
	used := map[int32]bool{}
	for _, p := range partitionOf {
		used[p] = true
	}
	t.Logf("events=%d customers=%d partitions used=%d", len(seen), len(partitionOf), len(used))
}
