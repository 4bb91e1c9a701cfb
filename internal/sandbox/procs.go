package sandbox

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// A pidEntry is one process the sandbox started. StartTime is the
// process's start time in clock ticks since boot (/proc/PID/stat field
// 22): with it, `down` never signals an unrelated process that reused a PID.
type pidEntry struct {
	Name      string
	PID       int
	StartTime uint64
}

// pidFile is DIR/pids: one line "NAME PID STARTTIME" per process the
// sandbox started and has not yet seen exit. The supervisor (`up` itself)
// is the entry named "sandbox".
type pidFile struct {
	path string
	mu   sync.Mutex
}

func (f *pidFile) read() ([]pidEntry, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return readPIDFile(f.path)
}

func readPIDFile(path string) ([]pidEntry, error) {
	fh, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer fh.Close()
	var out []pidEntry
	sc := bufio.NewScanner(fh)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		e, err := parsePIDLine(line)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		out = append(out, e)
	}
	return out, sc.Err()
}

func parsePIDLine(line string) (pidEntry, error) {
	fields := strings.Fields(line)
	if len(fields) != 3 {
		return pidEntry{}, fmt.Errorf("malformed line %q: want NAME PID STARTTIME", line)
	}
	pid, err := strconv.Atoi(fields[1])
	if err != nil || pid <= 0 {
		return pidEntry{}, fmt.Errorf("malformed PID in line %q", line)
	}
	st, err := strconv.ParseUint(fields[2], 10, 64)
	if err != nil {
		return pidEntry{}, fmt.Errorf("malformed start time in line %q", line)
	}
	return pidEntry{Name: fields[0], PID: pid, StartTime: st}, nil
}

func (f *pidFile) write(entries []pidEntry) error {
	sort.SliceStable(entries, func(i, j int) bool { return entries[i].PID < entries[j].PID })
	var b strings.Builder
	b.WriteString("# processes started by `lagscale sandbox up`; `lagscale sandbox down` stops them\n")
	for _, e := range entries {
		fmt.Fprintf(&b, "%s %d %d\n", e.Name, e.PID, e.StartTime)
	}
	tmp := f.path + ".tmp"
	if err := os.WriteFile(tmp, []byte(b.String()), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, f.path)
}

// add records a started process.
func (f *pidFile) add(name string, pid int) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	entries, err := readPIDFile(f.path)
	if err != nil {
		return err
	}
	st, _ := procStartTime(pid)
	entries = append(entries, pidEntry{Name: name, PID: pid, StartTime: st})
	return f.write(entries)
}

// remove forgets a process that has exited.
func (f *pidFile) remove(pid int) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	entries, err := readPIDFile(f.path)
	if err != nil {
		return err
	}
	kept := entries[:0]
	for _, e := range entries {
		if e.PID != pid {
			kept = append(kept, e)
		}
	}
	if len(kept) == 0 {
		if err := os.Remove(f.path); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
		return nil
	}
	return f.write(kept)
}

// procStartTime reads field 22 of /proc/PID/stat.
func procStartTime(pid int) (uint64, error) {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return 0, err
	}
	// The command name (field 2) is in parentheses and may hold spaces.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, fmt.Errorf("unexpected /proc/%d/stat", pid)
	}
	fields := strings.Fields(s[i+1:])
	// fields[0] is field 3 (state), so field 22 is fields[19].
	if len(fields) < 20 {
		return 0, fmt.Errorf("unexpected /proc/%d/stat", pid)
	}
	return strconv.ParseUint(fields[19], 10, 64)
}

// alive reports whether the entry's process still runs (and is not a
// zombie) and is the same process that was recorded.
func (e pidEntry) alive() bool {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(e.PID), "stat"))
	if err != nil {
		return false
	}
	s := string(b)
	if i := strings.LastIndexByte(s, ')'); i >= 0 {
		if f := strings.Fields(s[i+1:]); len(f) > 0 && f[0] == "Z" {
			return false
		}
	}
	if e.StartTime == 0 {
		return true
	}
	st, err := procStartTime(e.PID)
	return err == nil && st == e.StartTime
}

// stopPID sends SIGTERM to the process (and its process group when it
// leads one), waits up to grace for it to exit, then sends SIGKILL. It
// reports whether SIGKILL was needed.
func stopPID(e pidEntry, grace time.Duration) (killed bool) {
	if !e.alive() {
		return false
	}
	signal(e.PID, syscall.SIGTERM)
	deadline := time.Now().Add(grace)
	for time.Now().Before(deadline) {
		if !e.alive() {
			return false
		}
		time.Sleep(50 * time.Millisecond)
	}
	signal(e.PID, syscall.SIGKILL)
	for i := 0; i < 100 && e.alive(); i++ {
		time.Sleep(20 * time.Millisecond)
	}
	return true
}

// signal signals the process group the process leads, or the process
// alone when it leads none.
func signal(pid int, sig syscall.Signal) {
	if pgid, err := syscall.Getpgid(pid); err == nil && pgid == pid {
		_ = syscall.Kill(-pid, sig)
		return
	}
	_ = syscall.Kill(pid, sig)
}
