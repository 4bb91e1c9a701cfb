package testkit

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
)

// npmStamp records, inside node_modules, the hash of the package-lock.json
// that `npm ci` installed, so that a test runs `npm ci` only when the
// lockfile changed or nothing is installed.
const npmStamp = ".lagscale-lock-sha256"

// NPMInstall makes sure node and npm are on PATH and that dir's
// node_modules matches its package-lock.json, running `npm ci` when it does
// not. It fails, never skips, when node or npm is missing or `npm ci`
// fails.
//
// Test binaries of different packages run at once and may install the same
// folder (the examples install sdk/node first): an flock on a file named
// after the folder makes them take turns.
//
// CKJS_LINKING=dynamic is set for the install: when
// @confluentinc/kafka-javascript cannot download its prebuilt binary (no
// internet, as in CI) it builds librdkafka from its bundled source, and
// only the dynamic build uses the machine's OpenSSL and zlib instead of
// downloading their sources.
func NPMInstall(t testing.TB, dir string) {
	t.Helper()
	for _, tool := range []string{"node", "npm"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s is not on PATH: install Node.js 20 or newer with npm (https://nodejs.org/en/download, or `apt-get install nodejs npm`) to run the Node.js tests", tool)
		}
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		t.Fatal(err)
	}
	key := sha256.Sum256([]byte(abs))
	lf, err := os.OpenFile(filepath.Join(os.TempDir(), "lagscale-npm-"+hex.EncodeToString(key[:8])+".lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer lf.Close()
	if err := syscall.Flock(int(lf.Fd()), syscall.LOCK_EX); err != nil {
		t.Fatalf("locking the npm install of %s: %v", dir, err)
	}
	defer func() { _ = syscall.Flock(int(lf.Fd()), syscall.LOCK_UN) }()
	lock, err := os.ReadFile(filepath.Join(dir, "package-lock.json"))
	if err != nil {
		t.Fatalf("reading the lockfile: %v", err)
	}
	sum := sha256.Sum256(lock)
	want := hex.EncodeToString(sum[:])
	stamp := filepath.Join(dir, "node_modules", npmStamp)
	if got, err := os.ReadFile(stamp); err == nil && string(got) == want {
		return
	}
	cmd := exec.Command("npm", "ci", "--no-audit", "--no-fund")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "CKJS_LINKING=dynamic")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("npm ci in %s failed (needs the npm registry or a cache, and gcc when the Kafka client builds from source): %v\n%s", dir, err, out)
	}
	if err := os.WriteFile(stamp, []byte(want), 0o644); err != nil {
		t.Fatal(err)
	}
}
