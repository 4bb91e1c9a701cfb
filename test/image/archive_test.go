package image

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"debug/elf"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/lagscale/lagscale/internal/testenv"
)

// The archives are read here with the standard library alone, following
// the OCI image layout spec, so that the test does not trust the builder's
// own library to read back what it wrote.

// archive is an OCI image archive read into memory.
type archive struct {
	files map[string][]byte
	// name is the index's org.opencontainers.image.ref.name.
	name string
	// digest is the image manifest's digest.
	digest   string
	manifest ociManifest
	config   ociConfig
}

type ociDescriptor struct {
	MediaType   string            `json:"mediaType"`
	Digest      string            `json:"digest"`
	Size        int64             `json:"size"`
	Annotations map[string]string `json:"annotations"`
}

type ociManifest struct {
	MediaType string          `json:"mediaType"`
	Config    ociDescriptor   `json:"config"`
	Layers    []ociDescriptor `json:"layers"`
}

type ociConfig struct {
	Architecture string `json:"architecture"`
	OS           string `json:"os"`
	Created      string `json:"created"`
	Config       struct {
		User       string            `json:"User"`
		Entrypoint []string          `json:"Entrypoint"`
		Env        []string          `json:"Env"`
		WorkingDir string            `json:"WorkingDir"`
		Labels     map[string]string `json:"Labels"`
	} `json:"config"`
}

func readArchive(t *testing.T, path string) *archive {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	a := &archive{files: map[string][]byte{}}
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		if h.Typeflag == tar.TypeReg {
			a.files[h.Name], _ = io.ReadAll(tr)
		}
	}
	var idx struct {
		Manifests []ociDescriptor `json:"manifests"`
	}
	if err := json.Unmarshal(a.files["index.json"], &idx); err != nil || len(idx.Manifests) != 1 {
		t.Fatalf("%s: index.json with one manifest wanted: %v %s", path, err, a.files["index.json"])
	}
	a.name = idx.Manifests[0].Annotations["org.opencontainers.image.ref.name"]
	a.digest = idx.Manifests[0].Digest
	if err := json.Unmarshal(a.blob(t, a.digest), &a.manifest); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(a.blob(t, a.manifest.Config.Digest), &a.config); err != nil {
		t.Fatal(err)
	}
	return a
}

func (a *archive) blob(t *testing.T, digest string) []byte {
	t.Helper()
	b, ok := a.files["blobs/"+strings.Replace(digest, ":", "/", 1)]
	if !ok {
		t.Fatalf("archive %s lacks blob %s", a.name, digest)
	}
	return b
}

var (
	buildOnce  sync.Once
	builtDir   string
	buildError error
)

// buildImages runs `make image` into dir.
func buildImages(dir string) error {
	cmd := exec.Command("make", "-s", "image", "IMAGES_DIR="+dir)
	cmd.Dir = testenv.Root()
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("make image: %v\n%s", err, out)
	}
	return nil
}

// images returns the directory of the archives `make image` built, once
// per test binary.
func images(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		builtDir, buildError = os.MkdirTemp("", "lagscale-images-")
		if buildError == nil {
			buildError = buildImages(builtDir)
		}
	})
	if buildError != nil {
		t.Fatal(buildError)
	}
	return builtDir
}

func TestMain(m *testing.M) {
	code := m.Run()
	if builtDir != "" {
		os.RemoveAll(builtDir)
	}
	os.Exit(code)
}

// TestImagesAreReproducible builds the images a second time, from the
// same commit, and wants the same manifest digests and the same bytes.
func TestImagesAreReproducible(t *testing.T) {
	first := images(t)
	second := t.TempDir()
	if err := buildImages(second); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"lagscale.tar", "example-handler.tar"} {
		a, b := readArchive(t, filepath.Join(first, name)), readArchive(t, filepath.Join(second, name))
		if a.digest != b.digest {
			t.Errorf("%s: two builds gave digests %s and %s", name, a.digest, b.digest)
		}
		t.Logf("%s: %s (%s)", name, a.digest, a.name)
	}
}

// TestImageContents checks each image's config and files: the static
// binary as the entrypoint, 65532:65532, CA roots, the nonroot passwd
// entry and the OCI labels.
func TestImageContents(t *testing.T) {
	dir := images(t)
	rev, err := exec.Command("git", "-C", testenv.Root(), "rev-parse", "HEAD").Output()
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		file, name, binary string
	}{
		{"lagscale.tar", "ghcr.io/lagscale/manager:" + chartAppVersion(t), "/manager"},
		{"example-handler.tar", "ghcr.io/lagscale/example-handler:" + chartAppVersion(t), "/handler"},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			a := readArchive(t, filepath.Join(dir, tt.file))
			if a.name != tt.name {
				t.Errorf("named %q, want %q", a.name, tt.name)
			}
			if a.manifest.MediaType != "application/vnd.oci.image.manifest.v1+json" {
				t.Errorf("manifest media type %q", a.manifest.MediaType)
			}
			c := a.config.Config
			if c.User != "65532:65532" {
				t.Errorf("User = %q, want 65532:65532", c.User)
			}
			if len(c.Entrypoint) != 1 || c.Entrypoint[0] != tt.binary {
				t.Errorf("Entrypoint = %q, want [%s]", c.Entrypoint, tt.binary)
			}
			want := map[string]string{
				"org.opencontainers.image.source":   "https://github.com/lagscale/lagscale",
				"org.opencontainers.image.version":  chartAppVersion(t),
				"org.opencontainers.image.revision": strings.TrimSpace(string(rev)),
			}
			for k, v := range want {
				if c.Labels[k] != v {
					t.Errorf("label %s = %q, want %q", k, c.Labels[k], v)
				}
			}
			if a.config.OS != "linux" || a.config.Architecture == "" {
				t.Errorf("platform %s/%s", a.config.OS, a.config.Architecture)
			}
			fs := a.rootfs(t)
			bin, ok := fs[strings.TrimPrefix(tt.binary, "/")]
			if !ok || bin.Mode&0o111 == 0 {
				t.Fatalf("%s missing or not executable", tt.binary)
			}
			ef, err := elf.NewFile(bytes.NewReader(bin.body))
			if err != nil {
				t.Fatalf("%s: %v", tt.binary, err)
			}
			for _, p := range ef.Progs {
				if p.Type == elf.PT_INTERP {
					t.Errorf("%s is dynamically linked; an empty base needs a static binary", tt.binary)
				}
			}
			if !strings.Contains(string(fs["etc/passwd"].body), "nonroot:x:65532:65532:") {
				t.Errorf("etc/passwd lacks the nonroot entry: %q", fs["etc/passwd"].body)
			}
			if n := strings.Count(string(fs["etc/ssl/certs/ca-certificates.crt"].body), "BEGIN CERTIFICATE"); n < 100 {
				t.Errorf("etc/ssl/certs/ca-certificates.crt holds %d certificates, want the CA roots", n)
			}
		})
	}
}

type entry struct {
	*tar.Header
	body []byte
}

// rootfs applies the layers in order into a map of path to entry.
func (a *archive) rootfs(t *testing.T) map[string]entry {
	t.Helper()
	fs := map[string]entry{}
	for _, l := range a.manifest.Layers {
		if l.MediaType != "application/vnd.oci.image.layer.v1.tar+gzip" {
			t.Fatalf("layer media type %q", l.MediaType)
		}
		zr, err := gzip.NewReader(strings.NewReader(string(a.blob(t, l.Digest))))
		if err != nil {
			t.Fatal(err)
		}
		tr := tar.NewReader(zr)
		for {
			h, err := tr.Next()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(tr)
			fs[strings.TrimSuffix(h.Name, "/")] = entry{h, body}
		}
	}
	return fs
}

// chartAppVersion is the chart's appVersion, the default image tag.
func chartAppVersion(t *testing.T) string {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(testenv.Root(), "charts", "lagscale", "Chart.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^appVersion:\s*"?([^"\s]+)"?\s*$`).FindSubmatch(raw)
	if m == nil {
		t.Fatal("Chart.yaml has no appVersion")
	}
	return string(m[1])
}

// TestChartDefaultImageIsTheBuiltImage renders the chart with its defaults
// and wants the operator's image to be the name `make image` gives the
// archive, so that pushing the archive as named is what the chart pulls.
func TestChartDefaultImageIsTheBuiltImage(t *testing.T) {
	helm := filepath.Join(testenv.Root(), "bin", "helm")
	if _, err := os.Stat(helm); err != nil {
		t.Fatalf("helm not found at %s: run `make helm` to build the pinned version", helm)
	}
	out, err := exec.Command(helm, "template", "x", filepath.Join(testenv.Root(), "charts", "lagscale"), "--kube-version", testenv.KubernetesVersion, "--show-only", "templates/deployment.yaml").CombinedOutput()
	if err != nil {
		t.Fatalf("helm template: %v\n%s", err, out)
	}
	m := regexp.MustCompile(`(?m)^[ \t]+image:[ \t]*"?([^"\s]+)"?[ \t]*$`).FindAllSubmatch(out, -1)
	if len(m) != 1 {
		t.Fatalf("want one image in the rendered chart, found %d", len(m))
	}
	a := readArchive(t, filepath.Join(images(t), "lagscale.tar"))
	if got := string(m[0][1]); got != a.name {
		t.Errorf("chart's default image %q, image archive named %q", got, a.name)
	}
}
