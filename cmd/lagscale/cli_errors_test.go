package main

import (
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kfake"
)

// TestVerbsBadInputSayWhatToDo runs each verb the ways a new user gets it
// wrong, without a cluster: each answer is one line that names the fix.
// `lag` against a real API server is TestLagBadInputSaysWhatToDo.
func TestVerbsBadInputSayWhatToDo(t *testing.T) {
	kafka, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		t.Fatal(err)
	}
	defer kafka.Close()
	broker := kafka.ListenAddrs()[0]
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := ln.Addr().String()
	ln.Close()
	nosandbox := filepath.Join(t.TempDir(), "none")
	manifest := filepath.Join(t.TempDir(), "ec.yaml")
	if err := os.WriteFile(manifest, []byte("kind: EventConsumer\nspec:\n  scaling:\n    maxLagSecond: 5\n"), 0o600); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name string
		args []string
		want string
	}{
		{"no command", nil, "want a command"},
		{"unknown command", []string{"scale"}, `unknown command "scale": want sandbox, produce, sim, lag, migrate`},
		{"produce: topic missing in Kafka", []string{"produce", "--brokers", broker, "--topic", "orders", "--count", "250"}, "rerun with --create-topic"},
		{"produce: wrong broker", []string{"produce", "--brokers", closed, "--topic", "orders", "--count", "250"}, "cannot reach Kafka at " + closed + " "},
		{"produce: no topic flag", []string{"produce", "--brokers", broker, "--count", "1"}, "no topic: set --topic"},
		{"produce: runs forever", []string{"produce", "--brokers", broker, "--topic", "orders"}, "set --duration or --count"},
		{"sandbox: no subcommand", []string{"sandbox"}, "sandbox: want a subcommand: up, down or logs"},
		{"sandbox logs: no sandbox", []string{"sandbox", "logs", "--dir", nosandbox, "orders-abc"}, "no sandbox in " + nosandbox + ": start one with `lagscale sandbox up`"},
		{"sandbox logs: flags after the pod", []string{"sandbox", "logs", "orders-abc", "--dir", nosandbox}, "after the flags: lagscale sandbox logs"},
		{"sim: unknown scenario", []string{"sim", "--scenario", "bogus"}, `unknown scenario "bogus" (want one of`},
		{"sim: unknown split", []string{"sim", "--family", "validation"}, `--family must be train or test, not "validation"`},
		{"sim: latency not whole seconds", []string{"sim", "--reconcile-latency", "1500ms"}, "--reconcile-latency must be whole seconds"},
		{"sim: no manifest", []string{"sim", "--consumer", nosandbox}, "reading --consumer"},
		{"sim: a misspelt manifest field", []string{"sim", "--consumer", manifest}, `unknown field "maxLagSecond"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := run(tt.args, io.Discard)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %v, want one containing %q", err, tt.want)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Fatalf("want one line: %q", err)
			}
		})
	}
}

// TestUnknownCommandNamesEveryCommand: the error for an unknown command
// lists every command of the usage, migrate included.
func TestUnknownCommandNamesEveryCommand(t *testing.T) {
	err := run([]string{"scale"}, io.Discard)
	if err == nil {
		t.Fatal("an unknown command succeeded")
	}
	for _, c := range []string{"sandbox", "produce", "sim", "lag", "migrate"} {
		if !strings.Contains(err.Error(), c) {
			t.Errorf("error %q does not name %s", err, c)
		}
	}
}
