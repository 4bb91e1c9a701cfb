package testenv

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// A test binary that panics or hits `go test -timeout` exits without
// running cleanups, and the etcd and kube-apiserver it started live on.
// Each Start therefore records its processes' unique directories with the
// test binary's PID, and the next Start stops (by PID) the processes of any
// owner that is gone.

type record struct {
	Owner   int      `json:"owner"`
	Markers []string `json:"markers"`
}

func recordDir() string { return filepath.Join(os.TempDir(), "lagscale-testenv") }

// remember writes the record of a started control plane and returns its
// path, to be removed by forget on a clean stop.
func remember(markers []string) (string, error) {
	if err := os.MkdirAll(recordDir(), 0o755); err != nil {
		return "", err
	}
	f, err := os.CreateTemp(recordDir(), strconv.Itoa(os.Getpid())+"-*.json")
	if err != nil {
		return "", err
	}
	defer f.Close()
	return f.Name(), json.NewEncoder(f).Encode(record{Owner: os.Getpid(), Markers: markers})
}

func forget(path string) {
	if path != "" {
		_ = os.Remove(path)
	}
}

// reapOrphans stops the control-plane processes of test binaries that died
// without stopping them, and returns what it stopped.
func reapOrphans() []string {
	files, _ := filepath.Glob(filepath.Join(recordDir(), "*.json"))
	var stopped []string
	for _, path := range files {
		raw, err := os.ReadFile(path)
		if err != nil {
			continue
		}
		var r record
		if json.Unmarshal(raw, &r) != nil || alive(r.Owner) {
			continue
		}
		for _, pid := range processesWith(r.Markers) {
			if syscall.Kill(pid, syscall.SIGKILL) == nil {
				stopped = append(stopped, fmt.Sprintf("pid %d (left by test process %d)", pid, r.Owner))
			}
		}
		for _, m := range r.Markers {
			if strings.HasPrefix(m, os.TempDir()) {
				_ = os.RemoveAll(m)
			}
		}
		_ = os.Remove(path)
	}
	return stopped
}

func alive(pid int) bool {
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}

// processesWith lists the PIDs whose command line mentions any marker.
func processesWith(markers []string) []int {
	entries, _ := os.ReadDir("/proc")
	var out []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		cmdline, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil {
			continue
		}
		s := string(cmdline)
		for _, m := range markers {
			if m != "" && strings.Contains(s, m) {
				out = append(out, pid)
				break
			}
		}
	}
	return out
}

// Track records a process the test starts itself, by a string unique to its
// command line (a temporary path it is given), so that a test binary dying
// without cleanup does not leave it running: the next Start stops it. Call
// the returned function once the process is stopped.
func Track(marker string) (done func()) {
	path, _ := remember([]string{marker})
	return func() { forget(path) }
}
