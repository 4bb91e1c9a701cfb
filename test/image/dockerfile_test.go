// Package image checks the operator image's build without a Docker engine:
// it runs the Dockerfile's own build line and inspects the result.
package image

import (
	"bufio"
	"debug/elf"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/lagscale/lagscale/internal/testenv"
)

// buildLine returns the Dockerfile's RUN line that builds the manager.
func buildLine(t *testing.T) string {
	t.Helper()
	f, err := os.Open(filepath.Join(testenv.Root(), "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var found []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "RUN ") && strings.Contains(line, "go build") {
			found = append(found, strings.TrimPrefix(line, "RUN "))
		}
	}
	if len(found) != 1 {
		t.Fatalf("want exactly one RUN line with go build in the Dockerfile, found %d", len(found))
	}
	return found[0]
}

func TestDockerfileBuildsStaticManager(t *testing.T) {
	line := buildLine(t)
	for _, flag := range []string{"CGO_ENABLED=0", "-trimpath", "./cmd/manager"} {
		if !strings.Contains(line, flag) {
			t.Errorf("build line lacks %s: %s", flag, line)
		}
	}
	out := t.TempDir()
	// Run the very same line, writing to a temporary directory instead of /out.
	cmd := exec.Command("sh", "-c", strings.ReplaceAll(line, "/out/", out+"/"))
	cmd.Dir = testenv.Root()
	cmd.Env = append(os.Environ(), "TARGETOS=linux")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("the Dockerfile's build line failed: %v\n%s", err, b)
	}
	bin := filepath.Join(out, "manager")
	ef, err := elf.Open(bin)
	if err != nil {
		t.Fatal(err)
	}
	defer ef.Close()
	for _, p := range ef.Progs {
		if p.Type == elf.PT_INTERP {
			t.Fatal("the manager is dynamically linked; distroless static needs a static binary")
		}
	}
	help, _ := exec.Command(bin, "--help").CombinedOutput()
	for _, f := range []string{"--metrics-bind-address", "--leader-elect", "--watch-namespaces", "--max-concurrent-reconciles", "--log-format", "--default-poll-interval"} {
		if !strings.Contains(string(help), strings.TrimPrefix(f, "-")) {
			t.Errorf("manager --help lacks %s", f)
		}
	}
}

func TestDockerfileRuntimeStage(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join(testenv.Root(), "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	s := string(raw)
	if !regexp.MustCompile(`(?m)^FROM gcr\.io/distroless/static:nonroot@sha256:[0-9a-f]{64}$`).MatchString(s) {
		t.Error("runtime stage must be distroless static nonroot pinned by digest")
	}
	if !regexp.MustCompile(`(?m)^USER 65532:65532$`).MatchString(s) {
		t.Error("runtime stage must run as USER 65532:65532")
	}
}
