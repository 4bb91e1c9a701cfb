package main

import (
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"github.com/lagscale/lagscale/internal/testenv"
)

// TestLagBadInputSaysWhatToDo runs `lagscale lag` the ways a new user gets
// it wrong: an EventConsumer that does not exist (against the real API
// server), no API server listening (no sandbox running), and a kubeconfig
// that does not exist. Each answer is one line naming the fix.
func TestLagBadInputSaysWhatToDo(t *testing.T) {
	env, err := testenv.Start()
	if err != nil {
		t.Fatalf("start control plane: %v", err)
	}
	t.Cleanup(func() { _ = env.Stop() })
	dir := t.TempDir()
	good := filepath.Join(dir, "kubeconfig")
	if err := env.WriteKubeconfig(good); err != nil {
		t.Fatal(err)
	}

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := ln.Addr().String()
	ln.Close()
	down := filepath.Join(dir, "down")
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["sandbox"] = &clientcmdapi.Cluster{Server: "https://" + closed, InsecureSkipTLSVerify: true}
	cfg.AuthInfos["u"] = &clientcmdapi.AuthInfo{Token: "t"}
	cfg.Contexts["sandbox"] = &clientcmdapi.Context{Cluster: "sandbox", AuthInfo: "u", Namespace: "default"}
	cfg.CurrentContext = "sandbox"
	if err := clientcmd.WriteToFile(*cfg, down); err != nil {
		t.Fatal(err)
	}
	// No stray KUBECONFIG from the machine running the test.
	t.Setenv("KUBECONFIG", "")
	t.Setenv("HOME", dir)

	tests := []struct {
		name string
		args []string
		want string
	}{
		{"unknown EventConsumer", []string{"lag", "nope", "-n", "default", "--kubeconfig", good}, `lag: no EventConsumer "nope" in namespace "default": list them with ` + "`kubectl get eventconsumers -A`"},
		{"no sandbox running", []string{"lag", "orders", "--kubeconfig", down}, "lag: cannot reach the Kubernetes API at https://" + closed},
		{"no kubeconfig", []string{"lag", "orders", "--kubeconfig", filepath.Join(dir, "missing")}, "lag: no usable kubeconfig"},
		{"no name", []string{"lag", "--kubeconfig", good}, "lag: want the EventConsumer's name"},
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
	_ = os.Remove(down)
}
