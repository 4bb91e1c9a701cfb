package main

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"io"
	"log"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/crane"
	"github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/layout"
)

// testOptions build an image of a small fake binary: the archive format
// does not depend on what the binary is.
func testOptions(out string) Options {
	return Options{Pkg: "./cmd/manager", Binary: "/manager", Name: "ghcr.io/lagscale/manager:0.1.0", Out: out,
		Source: "https://github.com/lagscale/lagscale", Version: "0.1.0", Revision: "0123456789abcdef", Epoch: time.Unix(1700000000, 0).UTC(), Arch: "amd64"}
}

func writeTestArchive(t *testing.T, out string, bin []byte) {
	t.Helper()
	o := testOptions(out)
	img, err := Image(o, bin)
	if err != nil {
		t.Fatal(err)
	}
	if err := WriteArchive(o.Out, o.Name, img, o.Epoch); err != nil {
		t.Fatal(err)
	}
}

func fileSum(t *testing.T, p string) [32]byte {
	t.Helper()
	raw, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return sha256.Sum256(raw)
}

// TestArchiveIsReproducible builds the same image twice, a second apart
// and into different directories: the archives are byte for byte equal,
// and a different binary changes them.
func TestArchiveIsReproducible(t *testing.T) {
	dir := t.TempDir()
	a, b, c := filepath.Join(dir, "a.tar"), filepath.Join(dir, "x", "b.tar"), filepath.Join(dir, "c.tar")
	writeTestArchive(t, a, []byte("binary one"))
	time.Sleep(1100 * time.Millisecond) // a build that took the clock would differ now
	writeTestArchive(t, b, []byte("binary one"))
	writeTestArchive(t, c, []byte("binary two"))
	if fileSum(t, a) != fileSum(t, b) {
		t.Error("two builds of the same binary gave different archives")
	}
	if fileSum(t, a) == fileSum(t, c) {
		t.Error("a different binary gave the same archive")
	}
}

// TestArchiveEntries checks the archive holds an OCI layout and the
// manifest.json docker load reads, with sorted entries at the fixed time.
func TestArchiveEntries(t *testing.T) {
	out := filepath.Join(t.TempDir(), "img.tar")
	writeTestArchive(t, out, []byte("binary"))
	f, err := os.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tr := tar.NewReader(f)
	var names []string
	files := map[string][]byte{}
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if !h.ModTime.Equal(time.Unix(1700000000, 0)) {
			t.Errorf("%s: time %s, want the epoch given", h.Name, h.ModTime)
		}
		names = append(names, h.Name)
		files[h.Name], _ = io.ReadAll(tr)
	}
	for i := 1; i < len(names); i++ {
		if names[i-1] >= names[i] {
			t.Errorf("entries not sorted: %q before %q", names[i-1], names[i])
		}
	}
	var ol struct {
		Version string `json:"imageLayoutVersion"`
	}
	if err := json.Unmarshal(files["oci-layout"], &ol); err != nil || ol.Version != "1.0.0" {
		t.Errorf("oci-layout = %q (%v)", files["oci-layout"], err)
	}
	var dm []dockerManifest
	if err := json.Unmarshal(files["manifest.json"], &dm); err != nil || len(dm) != 1 {
		t.Fatalf("manifest.json: %v %s", err, files["manifest.json"])
	}
	if len(dm[0].RepoTags) != 1 || dm[0].RepoTags[0] != "ghcr.io/lagscale/manager:0.1.0" || len(dm[0].Layers) != 2 {
		t.Errorf("manifest.json = %+v", dm[0])
	}
	for _, p := range append([]string{dm[0].Config}, dm[0].Layers...) {
		if _, ok := files[p]; !ok {
			t.Errorf("manifest.json names %s, which the archive lacks", p)
		}
	}
	var idx struct {
		Manifests []struct {
			MediaType    string            `json:"mediaType"`
			ArtifactType string            `json:"artifactType"`
			Annotations  map[string]string `json:"annotations"`
		} `json:"manifests"`
	}
	if err := json.Unmarshal(files["index.json"], &idx); err != nil || len(idx.Manifests) != 1 {
		t.Fatalf("index.json: %v %s", err, files["index.json"])
	}
	m := idx.Manifests[0]
	if m.MediaType != "application/vnd.oci.image.manifest.v1+json" || m.ArtifactType != "" ||
		m.Annotations["org.opencontainers.image.ref.name"] != "ghcr.io/lagscale/manager:0.1.0" ||
		m.Annotations["io.containerd.image.name"] != "ghcr.io/lagscale/manager:0.1.0" {
		t.Errorf("index.json descriptor = %+v", m)
	}
}

// TestCranePushAcceptsArchive loads the archive the way `crane push FILE`
// does and pushes it to a registry speaking the distribution protocol; the
// pushed image has the archive's config, layers and labels.
func TestCranePushAcceptsArchive(t *testing.T) {
	out := filepath.Join(t.TempDir(), "img.tar")
	writeTestArchive(t, out, []byte("binary"))
	img, err := crane.Load(out)
	if err != nil {
		t.Fatalf("crane load: %v", err)
	}
	srv := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	defer srv.Close()
	ref := strings.TrimPrefix(srv.URL, "http://") + "/lagscale/manager:0.1.0"
	if err := crane.Push(img, ref); err != nil {
		t.Fatalf("crane push: %v", err)
	}
	pulled, err := crane.Pull(ref)
	if err != nil {
		t.Fatal(err)
	}
	// The same image read as an OCI layout, as podman and containerd do.
	dir := t.TempDir()
	raw, _ := os.ReadFile(out)
	untar(t, raw, dir)
	idx, err := layout.ImageIndexFromPath(dir)
	if err != nil {
		t.Fatal(err)
	}
	im, _ := idx.IndexManifest()
	fromLayout, err := idx.Image(im.Manifests[0].Digest)
	if err != nil {
		t.Fatal(err)
	}
	// `crane push DIR` of the unpacked layout keeps the OCI manifest, and
	// so the digest the archive's index names.
	layoutRef := strings.TrimPrefix(srv.URL, "http://") + "/lagscale/manager:layout"
	if err := crane.Push(fromLayout, layoutRef); err != nil {
		t.Fatalf("crane push of the layout: %v", err)
	}
	pushed, err := crane.Digest(layoutRef)
	if err != nil {
		t.Fatal(err)
	}
	if pushed != im.Manifests[0].Digest.String() {
		t.Errorf("the layout pushed as %s, its index names %s", pushed, im.Manifests[0].Digest)
	}
	want, _ := fromLayout.ConfigName()
	got, _ := pulled.ConfigName()
	if got != want {
		t.Errorf("pushed config %s, layout config %s", got, want)
	}
	cf, err := pulled.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if cf.Config.User != "65532:65532" || len(cf.Config.Entrypoint) != 1 || cf.Config.Entrypoint[0] != "/manager" ||
		cf.Config.Labels["org.opencontainers.image.revision"] != "0123456789abcdef" {
		t.Errorf("pushed config = %+v", cf.Config)
	}
	ls, _ := pulled.Layers()
	if len(ls) != 2 {
		t.Errorf("pushed %d layers, want 2", len(ls))
	}
}

func untar(t *testing.T, raw []byte, dir string) {
	t.Helper()
	tr := tar.NewReader(bytes.NewReader(raw))
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(dir, h.Name)
		if h.Typeflag == tar.TypeDir {
			if err := os.MkdirAll(p, 0o755); err != nil {
				t.Fatal(err)
			}
			continue
		}
		body, _ := io.ReadAll(tr)
		if err := os.WriteFile(p, body, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
