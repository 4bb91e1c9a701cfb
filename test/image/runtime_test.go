package image

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/lagscale/lagscale/internal/testkit"
)

// These tests run the images in runc, the OCI runtime Debian packages,
// from a bundle unpacked from the archive: the image's own entrypoint,
// user and environment, with a read-only root filesystem. runc needs root
// to switch to uid 65532 inside the container.

// runcPath finds runc or fails saying how to install it.
func runcPath(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("runc")
	if err != nil {
		t.Fatal("runc, the OCI runtime these tests run the images in, is not installed: run `make oci-runtime` (apt-get install runc)")
	}
	if os.Geteuid() != 0 {
		t.Fatal("runc needs root to run a container as uid 65532: run the tests as root (CI's .ci/run does)")
	}
	return p
}

// container is one runc container of an image.
type container struct {
	runc, root, bundle, id string
}

// unpack writes an OCI bundle for the archive's image: its layers as
// rootfs/ and a config.json from `runc spec` with the image's entrypoint,
// user and env, the root filesystem read-only. args follow the entrypoint.
// hostNet keeps the host's network namespace, so that the container can
// reach a broker listening on the host's loopback.
func unpack(t *testing.T, runc string, a *archive, hostNet bool, env []string, args ...string) *container {
	t.Helper()
	dir := t.TempDir()
	c := &container{runc: runc, root: filepath.Join(dir, "state"), bundle: filepath.Join(dir, "bundle"), id: fmt.Sprintf("lagscale-test-%d-%d", os.Getpid(), time.Now().UnixNano())}
	rootfs := filepath.Join(c.bundle, "rootfs")
	if err := os.MkdirAll(rootfs, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, l := range a.manifest.Layers {
		extractLayer(t, a.blob(t, l.Digest), rootfs)
	}
	if out, err := exec.Command(runc, "spec", "--bundle", c.bundle).CombinedOutput(); err != nil {
		t.Fatalf("runc spec: %v\n%s", err, out)
	}
	raw, err := os.ReadFile(filepath.Join(c.bundle, "config.json"))
	if err != nil {
		t.Fatal(err)
	}
	var spec map[string]any
	if err := json.Unmarshal(raw, &spec); err != nil {
		t.Fatal(err)
	}
	uid, gid := parseUser(t, a.config.Config.User)
	proc := spec["process"].(map[string]any)
	proc["terminal"] = false
	proc["args"] = append(append([]string{}, a.config.Config.Entrypoint...), args...)
	proc["env"] = append(append([]string{}, a.config.Config.Env...), env...)
	proc["cwd"] = a.config.Config.WorkingDir
	proc["user"] = map[string]any{"uid": uid, "gid": gid}
	spec["root"] = map[string]any{"path": "rootfs", "readonly": true}
	if hostNet {
		linux := spec["linux"].(map[string]any)
		var keep []any
		for _, ns := range linux["namespaces"].([]any) {
			if ns.(map[string]any)["type"] != "network" {
				keep = append(keep, ns)
			}
		}
		linux["namespaces"] = keep
	}
	if raw, err = json.Marshal(spec); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(c.bundle, "config.json"), raw, 0o644); err != nil {
		t.Fatal(err)
	}
	// Stop and remove the container when the test ends, even on failure;
	// runc's state lives in this test's own directory.
	t.Cleanup(func() { _ = exec.Command(runc, "--root", c.root, "delete", "--force", c.id).Run() })
	return c
}

func parseUser(t *testing.T, user string) (int, int) {
	t.Helper()
	u, g, ok := strings.Cut(user, ":")
	uid, err1 := strconv.Atoi(u)
	gid, err2 := strconv.Atoi(g)
	if !ok || err1 != nil || err2 != nil {
		t.Fatalf("image User %q is not numeric uid:gid", user)
	}
	return uid, gid
}

// extractLayer applies one gzip layer, keeping modes and owners.
func extractLayer(t *testing.T, blob []byte, dst string) {
	t.Helper()
	zr, err := gzip.NewReader(bytes.NewReader(blob))
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(zr)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(dst, filepath.Clean("/"+h.Name))
		switch h.Typeflag {
		case tar.TypeDir:
			if err := os.MkdirAll(p, 0o755); err != nil {
				t.Fatal(err)
			}
		case tar.TypeReg:
			body, _ := io.ReadAll(tr)
			if err := os.WriteFile(p, body, 0o600); err != nil {
				t.Fatal(err)
			}
		default:
			t.Fatalf("layer entry %s of type %c: the test only knows files and directories", h.Name, h.Typeflag)
		}
		if err := os.Chown(p, h.Uid, h.Gid); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, os.FileMode(h.Mode).Perm()|modeBits(h.Mode)); err != nil {
			t.Fatal(err)
		}
	}
}

func modeBits(m int64) os.FileMode {
	var out os.FileMode
	if m&0o1000 != 0 {
		out |= os.ModeSticky
	}
	return out
}

// TestOperatorImageRuns runs the operator image's entrypoint with --help
// as the image's user on a read-only root filesystem.
func TestOperatorImageRuns(t *testing.T) {
	runc := runcPath(t)
	a := readArchive(t, filepath.Join(images(t), "lagscale.tar"))
	c := unpack(t, runc, a, false, nil, "--help")
	var out bytes.Buffer
	cmd := exec.Command(runc, "--root", c.root, "run", "--bundle", c.bundle, c.id)
	cmd.Stdout, cmd.Stderr = &out, &out
	// The manager exits 2 after printing its usage for --help, as Go's
	// flag package does for ExitOnError; any other failure (runc's own
	// included) fails the test.
	var exit *exec.ExitError
	if err := cmd.Run(); err != nil && (!errors.As(err, &exit) || exit.ExitCode() != 2 || !strings.Contains(out.String(), "help requested")) {
		t.Fatalf("runc run /manager --help: %v\n%s", err, out.String())
	}
	for _, f := range []string{"-metrics-bind-address", "-leader-elect", "-watch-namespaces", "-log-format"} {
		if !strings.Contains(out.String(), f) {
			t.Errorf("the image's --help lacks %s:\n%s", f, out.String())
		}
	}
}

// TestHandlerImageConsumes runs the example handler image against a broker
// on the host: it must consume and commit every record, run as uid and gid
// 65532 with a read-only root, and drain on SIGTERM.
func TestHandlerImageConsumes(t *testing.T) {
	runc := runcPath(t)
	a := readArchive(t, filepath.Join(images(t), "example-handler.tar"))
	const topic, group, parts, per = "orders", "billing", 3, 50
	k := testkit.NewKafka(t, parts, topic)
	k.Produce(topic, parts, per)
	env := []string{
		"KAFKA_BOOTSTRAP_SERVERS=" + strings.Join(k.Addrs, ","),
		"KAFKA_TOPICS=" + topic,
		"KAFKA_CONSUMER_GROUP=" + group,
		"KAFKA_AUTO_OFFSET_RESET=earliest",
		"LAGSCALE_HTTP_ADDR=" + testkit.FreeAddr(t),
	}
	c := unpack(t, runc, a, true, env)
	p := testkit.Start(t, exec.Command(runc, "--root", c.root, "run", "--bundle", c.bundle, c.id))

	var pid int
	testkit.WaitFor(t, 30*time.Second, "the container to start", func() bool {
		out, err := exec.Command(runc, "--root", c.root, "state", c.id).Output()
		if err != nil {
			return false
		}
		var st struct {
			Status string `json:"status"`
			Pid    int    `json:"pid"`
		}
		if json.Unmarshal(out, &st) != nil || st.Status != "running" {
			return false
		}
		pid = st.Pid
		return true
	})
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"Uid:\t65532\t65532\t65532\t65532", "Gid:\t65532\t65532\t65532\t65532"} {
		if !strings.Contains(string(status), want) {
			t.Errorf("handler process: want %q in its status:\n%s", want, status)
		}
	}
	mounts, err := os.ReadFile(fmt.Sprintf("/proc/%d/mountinfo", pid))
	if err != nil {
		t.Fatal(err)
	}
	if !rootReadOnly(string(mounts)) {
		t.Errorf("the handler's root filesystem is not read-only:\n%s", mounts)
	}

	testkit.WaitFor(t, 60*time.Second, "the handler to commit every record", func() bool { return k.Lagging(group, topic) == 0 })
	if out, err := exec.Command(runc, "--root", c.root, "kill", c.id, "TERM").CombinedOutput(); err != nil {
		t.Fatalf("runc kill TERM: %v\n%s", err, out)
	}
	if code := p.Wait(t); code != 0 {
		t.Fatalf("handler exited %d after SIGTERM; stdout:\n%s", code, p.Stdout())
	}
	if want := fmt.Sprintf("summary handled=%d ", parts*per); !strings.Contains(p.Stdout(), want) {
		t.Errorf("want %q in the handler's output, got:\n%s", want, p.Stdout())
	}
}

// rootReadOnly reports whether the mount at / in a mountinfo is read-only.
func rootReadOnly(mountinfo string) bool {
	for _, line := range strings.Split(mountinfo, "\n") {
		f := strings.Fields(line)
		if len(f) > 5 && f[4] == "/" {
			for _, o := range strings.Split(f[5], ",") {
				if o == "ro" {
					return true
				}
			}
			return false
		}
	}
	return false
}
