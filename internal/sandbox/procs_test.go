package sandbox

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestPIDFileAddRemove(t *testing.T) {
	f := &pidFile{path: filepath.Join(t.TempDir(), "pids")}
	if err := f.add("sandbox", os.Getpid()); err != nil {
		t.Fatal(err)
	}
	if err := f.add("etcd", 4242); err != nil {
		t.Fatal(err)
	}
	got, err := f.read()
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 {
		t.Fatalf("read %d entries, want 2: %+v", len(got), got)
	}
	for _, e := range got {
		if e.Name == "sandbox" && (!e.alive() || e.StartTime == 0) {
			t.Fatalf("own entry %+v: want alive with a start time", e)
		}
	}
	if err := f.remove(4242); err != nil {
		t.Fatal(err)
	}
	if err := f.remove(os.Getpid()); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(f.path); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("pid file still exists after the last remove: %v", err)
	}
}

func TestParsePIDLine(t *testing.T) {
	tests := []struct {
		line    string
		want    pidEntry
		wantErr bool
	}{
		{line: "kube-apiserver 123 456", want: pidEntry{"kube-apiserver", 123, 456}},
		{line: "handler:default/demo-x 7 8", want: pidEntry{"handler:default/demo-x", 7, 8}},
		{line: "etcd 123", wantErr: true},
		{line: "etcd abc 1", wantErr: true},
		{line: "etcd -1 1", wantErr: true},
		{line: "etcd 1 x", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.line, func(t *testing.T) {
			got, err := parsePIDLine(tt.line)
			if (err != nil) != tt.wantErr || (!tt.wantErr && got != tt.want) {
				t.Fatalf("parsePIDLine(%q) = %+v, %v", tt.line, got, err)
			}
		})
	}
}

// A recorded PID whose start time differs belongs to another process now:
// it is not "alive" for the sandbox and never signalled.
func TestPIDEntryReusedPIDIsNotAlive(t *testing.T) {
	st, err := procStartTime(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if !(pidEntry{"x", os.Getpid(), st}).alive() {
		t.Fatal("own process with its start time: want alive")
	}
	if (pidEntry{"x", os.Getpid(), st + 1}).alive() {
		t.Fatal("own PID with another start time: want not alive")
	}
}

func TestStopPIDEscalatesToSIGKILL(t *testing.T) {
	tests := []struct {
		name       string
		script     string
		wantKilled bool
	}{
		{"exits on SIGTERM", "sleep 60", false},
		{"ignores SIGTERM", "trap '' TERM; while true; do sleep 0.1; done", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cmd := exec.Command("sh", "-c", tt.script)
			cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			done := make(chan struct{})
			go func() { _ = cmd.Wait(); close(done) }()
			t.Cleanup(func() { _ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL); <-done })
			time.Sleep(200 * time.Millisecond) // let the trap install
			st, _ := procStartTime(cmd.Process.Pid)
			e := pidEntry{Name: "t", PID: cmd.Process.Pid, StartTime: st}
			// stopPID polls /proc, where a reaped child disappears.
			killed := stopPID(e, time.Second)
			select {
			case <-done:
			case <-time.After(5 * time.Second):
				t.Fatal("process still running after stopPID")
			}
			if killed != tt.wantKilled {
				t.Fatalf("killed = %v, want %v", killed, tt.wantKilled)
			}
		})
	}
}

func TestCheckPortFree(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	port := ln.Addr().(*net.TCPAddr).Port
	err = checkPortFree(port, "Kafka", "pass --kafka-port with a free port")
	want := fmt.Sprintf("port %d (Kafka) is already in use: pass --kafka-port with a free port", port)
	if err == nil || err.Error() != want {
		t.Fatalf("err = %v, want %q", err, want)
	}
	free, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	if err := checkPortFree(free, "Kafka", "x"); err != nil {
		t.Fatalf("free port %d: %v", free, err)
	}
}

func TestLayoutCheckVersion(t *testing.T) {
	dir := t.TempDir()
	l := layout{Dir: dir}
	if err := l.checkVersion(); err != nil {
		t.Fatalf("fresh directory: %v", err)
	}
	if err := l.checkVersion(); err != nil {
		t.Fatalf("second run: %v", err)
	}
	if err := os.WriteFile(l.Version(), []byte("lagscale-sandbox/0 kubernetes/1.30.0\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	err := l.checkVersion()
	if err == nil || !strings.Contains(err.Error(), "rm -rf "+dir) {
		t.Fatalf("stale directory: err = %v, want the rm -rf fix", err)
	}
}

func TestDownWithNothingRunning(t *testing.T) {
	dir := t.TempDir()
	f := &pidFile{path: layout{Dir: dir}.PIDs()}
	// A recorded process that has exited: down stops nothing and cleans up.
	if err := f.write([]pidEntry{{Name: "etcd", PID: 999999999 % 4194304, StartTime: 1}}); err != nil {
		t.Fatal(err)
	}
	stopped, err := Down(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(stopped) != 0 {
		t.Fatalf("stopped %v, want nothing", stopped)
	}
	if _, err := os.Stat(f.path); !errors.Is(err, os.ErrNotExist) {
		t.Fatal("pid file left behind")
	}
}
