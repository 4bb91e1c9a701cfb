// Package memlimit sets the Go runtime's soft memory limit from the
// container's memory limit, so that the garbage collector works harder as
// the process nears its limit instead of the kernel killing it there.
//
// Under Go's default GC target the heap grows to about twice what is live
// before a collection; an operator whose live heap is half its container
// limit is then killed without ever running short of memory it needs.
package memlimit

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"strings"
)

// Fraction of the container's limit the soft limit is set to: the rest is
// for what the runtime does not count (goroutine stacks it has not yet
// returned, the binary, cgo) and for the collector's lag behind the heap.
const Fraction = 0.9

// noLimit is how cgroup v1 spells "unlimited": a page-rounded maximum of
// int64. Anything at or above it is no limit.
const noLimit = 1 << 62

// Container returns the memory limit of the cgroup this process runs in,
// ok false when there is none. root is where the cgroup file system is
// mounted ("/sys/fs/cgroup").
func Container(root string) (limit int64, ok bool, err error) {
	// cgroup v2: the process's own cgroup, seen at the root of its
	// cgroup namespace.
	if raw, err := os.ReadFile(filepath.Join(root, "memory.max")); err == nil {
		return parse(string(raw))
	} else if !errors.Is(err, os.ErrNotExist) {
		return 0, false, err
	}
	// cgroup v1.
	if raw, err := os.ReadFile(filepath.Join(root, "memory", "memory.limit_in_bytes")); err == nil {
		return parse(string(raw))
	} else if !errors.Is(err, os.ErrNotExist) {
		return 0, false, err
	}
	return 0, false, nil
}

func parse(raw string) (int64, bool, error) {
	s := strings.TrimSpace(raw)
	if s == "max" {
		return 0, false, nil
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return 0, false, fmt.Errorf("memory limit %q: %w", s, err)
	}
	if n <= 0 || n >= noLimit {
		return 0, false, nil
	}
	return n, true, nil
}

// Soft is the soft memory limit for a container limit of limit bytes.
func Soft(limit int64) int64 {
	return int64(float64(limit) * Fraction)
}

// Apply sets the runtime's soft memory limit to Fraction of the
// container's, unless GOMEMLIMIT is set (a setting the user wrote wins) or
// there is no container limit. It returns the limit set, 0 when none was,
// and a sentence saying why, for the log.
func Apply(root string) (int64, string) {
	if v := os.Getenv("GOMEMLIMIT"); v != "" {
		return 0, "GOMEMLIMIT=" + v + " is set"
	}
	limit, ok, err := Container(root)
	switch {
	case err != nil:
		return 0, "container memory limit unreadable: " + err.Error()
	case !ok:
		return 0, "no container memory limit"
	}
	soft := Soft(limit)
	debug.SetMemoryLimit(soft)
	return soft, fmt.Sprintf("%.0f%% of the container's memory limit of %d bytes", Fraction*100, limit)
}
