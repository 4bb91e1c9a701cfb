// Command image builds a lagscale image as an OCI archive without a
// container engine: it compiles a static Go binary and puts it, with CA
// roots and a nonroot user, on an empty base through go-containerregistry.
//
// The archive is an OCI image layout (oci-layout, index.json, blobs/) that
// also carries a Docker-style manifest.json pointing at the same blobs, so
// `docker load`, `podman load` and `crane push` all take it. Every input
// that could vary between builds is fixed: file times are the epoch given
// (the commit time by default in the Makefile), tar entries are sorted and
// owned by fixed ids, gzip carries no time, and the binary is built with
// -trimpath and no build id. Two builds of the same commit therefore give
// the same digest.
//
//	go run . -root ../.. -pkg ./cmd/manager -binary /manager -name ghcr.io/lagscale/manager:0.1.0 -out ../../bin/images/lagscale.tar
package main

import (
	"archive/tar"
	"bytes"
	"encoding/json"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"golang.org/x/crypto/x509roots/fallback/bundle"
)

// Nonroot is the uid and gid the images run as, the same as distroless'
// nonroot user, so that a pod's runAsUser and file ownership agree with the
// Dockerfile's image.
const Nonroot = 65532

// CABundle is where the CA roots land: the path Go's crypto/x509 reads
// first on Linux.
const CABundle = "/etc/ssl/certs/ca-certificates.crt"

// Options describe one image.
type Options struct {
	// Root is the Go module to build from (the repository root).
	Root string
	// Pkg is the main package, relative to Root.
	Pkg string
	// Binary is the binary's path inside the image, also the entrypoint.
	Binary string
	// Name is the reference the image would be pushed as.
	Name string
	// Out is the archive to write.
	Out string
	// Source, Version and Revision become the OCI labels.
	Source, Version, Revision string
	// Epoch is the time of every file and of the image's creation.
	Epoch time.Time
	// Arch is the GOARCH and the image's architecture.
	Arch string
}

func main() {
	var o Options
	var epoch int64
	flag.StringVar(&o.Root, "root", "../..", "Go module to build from")
	flag.StringVar(&o.Pkg, "pkg", "", "main package to build, relative to -root (./cmd/manager)")
	flag.StringVar(&o.Binary, "binary", "", "path of the binary in the image, and the entrypoint (/manager)")
	flag.StringVar(&o.Name, "name", "", "reference the image would be pushed as (ghcr.io/lagscale/manager:0.1.0)")
	flag.StringVar(&o.Out, "out", "", "OCI archive to write")
	flag.StringVar(&o.Source, "source", "https://github.com/lagscale/lagscale", "org.opencontainers.image.source label")
	flag.StringVar(&o.Version, "version", "", "org.opencontainers.image.version label")
	flag.StringVar(&o.Revision, "revision", "", "org.opencontainers.image.revision label (the commit)")
	flag.Int64Var(&epoch, "epoch", 0, "Unix time of every file and of the image (SOURCE_DATE_EPOCH)")
	flag.StringVar(&o.Arch, "arch", "amd64", "GOARCH and image architecture")
	flag.Parse()
	o.Epoch = time.Unix(epoch, 0).UTC()
	if err := Build(o); err != nil {
		fmt.Fprintln(os.Stderr, "image:", err)
		os.Exit(1)
	}
}

// Build compiles the binary and writes the image archive.
func Build(o Options) error {
	for flagName, v := range map[string]string{"-pkg": o.Pkg, "-binary": o.Binary, "-name": o.Name, "-out": o.Out, "-version": o.Version, "-revision": o.Revision} {
		if v == "" {
			return fmt.Errorf("%s is required", flagName)
		}
	}
	if !strings.HasPrefix(o.Binary, "/") {
		return fmt.Errorf("-binary %q must be an absolute path in the image", o.Binary)
	}
	bin, err := compile(o)
	if err != nil {
		return err
	}
	img, err := Image(o, bin)
	if err != nil {
		return err
	}
	return WriteArchive(o.Out, o.Name, img, o.Epoch)
}

// compile builds the static binary the way the Dockerfile does, plus an
// empty build id so that the bytes depend on the sources only.
func compile(o Options) ([]byte, error) {
	dir, err := os.MkdirTemp("", "lagscale-image-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	out := filepath.Join(dir, "bin")
	cmd := exec.Command("go", "build", "-trimpath", "-buildvcs=false", "-ldflags=-s -w -buildid=", "-o", out, o.Pkg)
	cmd.Dir = o.Root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+o.Arch)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("go build %s: %w", o.Pkg, err)
	}
	return os.ReadFile(out)
}

// file is one entry of a layer.
type file struct {
	name string
	mode int64
	uid  int
	body []byte
	dir  bool
}

// baseFiles are what an empty base lacks for a Go binary to run as a
// nonroot user and verify TLS: passwd and group entries, a home, a /tmp,
// and the CA roots.
func baseFiles() ([]file, error) {
	var pemBundle bytes.Buffer
	n := 0
	for r := range bundle.Roots() {
		// A root with constraints that X.509 cannot express would be
		// trusted without them in a PEM file; leave those out, as Go's
		// own fallback pool applies them and a file cannot.
		if r.Constraint != nil {
			continue
		}
		if err := pem.Encode(&pemBundle, &pem.Block{Type: "CERTIFICATE", Bytes: r.Certificate}); err != nil {
			return nil, err
		}
		n++
	}
	if n == 0 {
		return nil, errors.New("the x509roots bundle holds no roots")
	}
	passwd := "root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n"
	group := "root:x:0:\nnonroot:x:65532:\n"
	return []file{
		{name: "etc", mode: 0o755, dir: true},
		{name: "etc/group", mode: 0o644, body: []byte(group)},
		{name: "etc/passwd", mode: 0o644, body: []byte(passwd)},
		{name: "etc/ssl", mode: 0o755, dir: true},
		{name: "etc/ssl/certs", mode: 0o755, dir: true},
		{name: strings.TrimPrefix(CABundle, "/"), mode: 0o644, body: pemBundle.Bytes()},
		{name: "home", mode: 0o755, dir: true},
		{name: "home/nonroot", mode: 0o700, uid: Nonroot, dir: true},
		{name: "tmp", mode: 0o1777, dir: true},
	}, nil
}

// binaryFiles puts the binary at its path, with its parent directories.
func binaryFiles(binPath string, bin []byte) []file {
	var fs []file
	rel := strings.TrimPrefix(binPath, "/")
	for d := path.Dir(rel); d != "."; d = path.Dir(d) {
		fs = append(fs, file{name: d, mode: 0o755, dir: true})
	}
	return append(fs, file{name: rel, mode: 0o755, body: bin})
}

// layerTar writes files as a tar with sorted names, fixed times and
// numeric owners only, so the same files give the same bytes.
func layerTar(files []file, epoch time.Time) ([]byte, error) {
	sort.Slice(files, func(i, j int) bool { return files[i].name < files[j].name })
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, f := range files {
		h := &tar.Header{Name: f.name, Mode: f.mode, Uid: f.uid, Gid: f.uid, ModTime: epoch, Format: tar.FormatPAX}
		if f.dir {
			h.Typeflag, h.Name = tar.TypeDir, f.name+"/"
		} else {
			h.Typeflag, h.Size = tar.TypeReg, int64(len(f.body))
		}
		if err := tw.WriteHeader(h); err != nil {
			return nil, err
		}
		if _, err := tw.Write(f.body); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

func layer(files []file, epoch time.Time) (v1.Layer, error) {
	raw, err := layerTar(files, epoch)
	if err != nil {
		return nil, err
	}
	return tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(raw)), nil },
		tarball.WithMediaType(types.OCILayer))
}

// Image assembles the image: a base layer (shared by every lagscale
// image), the binary's layer, and a config that runs the binary as
// 65532:65532 with the OCI labels.
func Image(o Options, bin []byte) (v1.Image, error) {
	base, err := baseFiles()
	if err != nil {
		return nil, err
	}
	baseLayer, err := layer(base, o.Epoch)
	if err != nil {
		return nil, err
	}
	binLayer, err := layer(binaryFiles(o.Binary, bin), o.Epoch)
	if err != nil {
		return nil, err
	}
	created := v1.Time{Time: o.Epoch}
	img := mutate.ConfigMediaType(mutate.MediaType(empty.Image, types.OCIManifestSchema1), types.OCIConfigJSON)
	img, err = mutate.Append(img,
		mutate.Addendum{Layer: baseLayer, MediaType: types.OCILayer, History: v1.History{Created: created, CreatedBy: "lagscale hack/image: passwd, group and CA roots", Comment: "base"}},
		mutate.Addendum{Layer: binLayer, MediaType: types.OCILayer, History: v1.History{Created: created, CreatedBy: "lagscale hack/image: go build -trimpath " + o.Pkg}},
	)
	if err != nil {
		return nil, err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	cf.Created = created
	cf.Architecture, cf.OS = o.Arch, "linux"
	cf.Config = v1.Config{
		User:       strconv.Itoa(Nonroot) + ":" + strconv.Itoa(Nonroot),
		Entrypoint: []string{o.Binary},
		WorkingDir: "/",
		Env:        []string{"PATH=/usr/local/bin:/usr/bin:/bin", "SSL_CERT_FILE=" + CABundle},
		Labels: map[string]string{
			"org.opencontainers.image.source":   o.Source,
			"org.opencontainers.image.version":  o.Version,
			"org.opencontainers.image.revision": o.Revision,
			"org.opencontainers.image.title":    path.Base(o.Binary),
		},
	}
	return mutate.ConfigFile(img, cf)
}

// dockerManifest is one entry of the manifest.json that `docker load`
// reads (and tarball.ImageFromPath, which `crane push` uses).
type dockerManifest struct {
	Config   string   `json:"Config"`
	RepoTags []string `json:"RepoTags"`
	Layers   []string `json:"Layers"`
}

// WriteArchive writes img as an OCI layout named name, plus manifest.json,
// into a tar at out with sorted entries and fixed times.
func WriteArchive(out, name string, img v1.Image, epoch time.Time) error {
	dir, err := os.MkdirTemp("", "lagscale-layout-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		return err
	}
	if err := p.WriteImage(img); err != nil {
		return err
	}
	mf, err := img.Manifest()
	if err != nil {
		return err
	}
	digest, err := img.Digest()
	if err != nil {
		return err
	}
	size, err := img.Size()
	if err != nil {
		return err
	}
	// The descriptor is written by hand, without the artifactType that
	// AppendImage would add, since this is an image, not an artifact.
	// containerd and Docker name the loaded image from
	// io.containerd.image.name; podman and skopeo from ref.name.
	if err := p.AppendDescriptor(v1.Descriptor{MediaType: mf.MediaType, Size: size, Digest: digest, Annotations: map[string]string{
		"org.opencontainers.image.ref.name": name,
		"io.containerd.image.name":          name,
	}}); err != nil {
		return err
	}
	cfgName, err := img.ConfigName()
	if err != nil {
		return err
	}
	layers, err := img.Layers()
	if err != nil {
		return err
	}
	dm := dockerManifest{Config: blobPath(cfgName), RepoTags: []string{name}}
	for _, l := range layers {
		d, err := l.Digest()
		if err != nil {
			return err
		}
		dm.Layers = append(dm.Layers, blobPath(d))
	}
	raw, err := json.Marshal([]dockerManifest{dm})
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "manifest.json"), raw, 0o644); err != nil {
		return err
	}
	return tarDir(dir, out, epoch)
}

func blobPath(h v1.Hash) string { return "blobs/" + h.Algorithm + "/" + h.Hex }

// tarDir writes the directory's files into a tar at out, sorted, with
// fixed times and owners.
func tarDir(dir, out string, epoch time.Time) error {
	var files []file
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == dir {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		if d.IsDir() {
			files = append(files, file{name: filepath.ToSlash(rel), mode: 0o755, dir: true})
			return nil
		}
		body, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		files = append(files, file{name: filepath.ToSlash(rel), mode: 0o644, body: body})
		return nil
	})
	if err != nil {
		return err
	}
	raw, err := layerTar(files, epoch)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		return err
	}
	tmp := out + ".tmp"
	if err := os.WriteFile(tmp, raw, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, out)
}
