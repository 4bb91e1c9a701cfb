package deploy

import (
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/lagscale/lagscale/api/v1alpha1"
)

// handlerUID is the uid of the example handler images (distroless nonroot).
const handlerUID = 65532

// materialize writes a projected volume of the rendered pod the way a
// kubelet does: every file owned by root, group root or the pod's fsGroup,
// with the item's mode or else the volume's defaultMode.
func materialize(t *testing.T, dir string, pod corev1.PodSpec, vol corev1.Volume) {
	t.Helper()
	gid := 0
	if sc := pod.SecurityContext; sc != nil && sc.FSGroup != nil {
		gid = int(*sc.FSGroup)
	}
	for _, src := range vol.Projected.Sources {
		for _, item := range src.Secret.Items {
			mode := os.FileMode(*vol.Projected.DefaultMode)
			if item.Mode != nil {
				mode = os.FileMode(*item.Mode)
			}
			p := filepath.Join(dir, item.Path)
			if err := os.WriteFile(p, []byte("pem of "+item.Key), 0o600); err != nil {
				t.Fatal(err)
			}
			if err := os.Chown(p, 0, gid); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(p, mode); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// TestTLSFilesReadableByNonRootHandler renders a Deployment with a CA and a
// client certificate, lays its TLS volume out as a kubelet would and reads
// each file in a child process running as uid/gid 65532, as the example
// handler image does. It needs root, as a kubelet does, to own files as
// root and switch the child's uid.
func TestTLSFilesReadableByNonRootHandler(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatalf("this test lays files out as a kubelet (owned by root) and reads them as uid %d: run it as root, e.g. `sudo -E go test -run TestTLSFilesReadableByNonRootHandler ./internal/deploy/`", handlerUID)
	}
	ec := &v1alpha1.EventConsumer{
		ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "tls"},
		Spec:       v1alpha1.EventConsumerSpec{Topics: []string{"t"}, ConsumerGroup: "g", Handler: &v1alpha1.HandlerSpec{Image: "handler:1"}},
	}
	conn := Connection{BootstrapServers: []string{"k:9093"}, TLS: &v1alpha1.TLSConfig{
		CASecretRef:   &v1alpha1.SecretKeyRef{Name: "ca", Key: "ca.crt"},
		CertSecretRef: &v1alpha1.SecretKeyRef{Name: "client", Key: "tls.crt"},
		KeySecretRef:  &v1alpha1.SecretKeyRef{Name: "client", Key: "tls.key"},
	}}
	dep, err := Build(ec, conn, 1)
	if err != nil {
		t.Fatal(err)
	}
	pod := dep.Spec.Template.Spec
	var vol *corev1.Volume
	for i := range pod.Volumes {
		if pod.Volumes[i].Name == TLSVolume {
			vol = &pod.Volumes[i]
		}
	}
	if vol == nil {
		t.Fatal("no TLS volume rendered")
	}
	// Not t.TempDir: its parent directory is 0700, which uid 65532 could
	// not even enter.
	dir, err := os.MkdirTemp("", "tlsread")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	materialize(t, dir, pod, *vol)
	for _, f := range []string{"ca.crt", "tls.crt", "tls.key"} {
		cmd := exec.Command("cat", filepath.Join(dir, f))
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: handlerUID, Gid: handlerUID}}
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("uid %d cannot read %s (mode %o): %v: %s", handlerUID, f, *vol.Projected.DefaultMode, err, out)
		}
	}
}
