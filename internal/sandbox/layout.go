package sandbox

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// KubernetesVersion is the version of the control-plane binaries hack/tools
// builds into bin/k8s/<version>.
const KubernetesVersion = "1.37.2"

// layoutVersion is written to DIR/version; a directory made by an
// incompatible sandbox is refused with the fix instead of half-working.
const layoutVersion = "lagscale-sandbox/1 kubernetes/" + KubernetesVersion

// layout names the files in the sandbox directory.
type layout struct {
	Dir string
}

func (l layout) path(parts ...string) string {
	return filepath.Join(append([]string{l.Dir}, parts...)...)
}

func (l layout) Kubeconfig() string  { return l.path("kubeconfig") }
func (l layout) PIDs() string        { return l.path("pids") }
func (l layout) PKI() string         { return l.path("pki") }
func (l layout) Etcd() string        { return l.path("etcd") }
func (l layout) Kafka() string       { return l.path("kafka") }
func (l layout) KafkaApache() string { return l.path("kafka-apache") }
func (l layout) Logs() string        { return l.path("logs") }
func (l layout) Pods() string        { return l.path("pods") }
func (l layout) Version() string     { return l.path("version") }

// PodLog is the log file of a pod's handler process.
func (l layout) PodLog(namespace, name string) string {
	return l.path("pods", namespace, name+".log")
}

// checkVersion refuses a directory made by another sandbox layout.
func (l layout) checkVersion() error {
	b, err := os.ReadFile(l.Version())
	if os.IsNotExist(err) {
		if entries, _ := os.ReadDir(l.Etcd()); len(entries) > 0 {
			return fmt.Errorf("%s holds etcd data but no version file (a stale sandbox directory): remove it with `rm -rf %s` or pass another --dir", l.Dir, l.Dir)
		}
		return os.WriteFile(l.Version(), []byte(layoutVersion+"\n"), 0o644)
	}
	if err != nil {
		return err
	}
	if got := strings.TrimSpace(string(b)); got != layoutVersion {
		return fmt.Errorf("%s was made by %q, not %q (a stale sandbox directory): remove it with `rm -rf %s` or pass another --dir", l.Dir, got, layoutVersion, l.Dir)
	}
	return nil
}
