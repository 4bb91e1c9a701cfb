package memlimit

import (
	"os"
	"path/filepath"
	"runtime/debug"
	"testing"
)

func write(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestContainer(t *testing.T) {
	for _, tc := range []struct {
		name, file, content string
		limit               int64
		ok, err             bool
	}{
		{name: "v2 limit", file: "memory.max", content: "1073741824\n", limit: 1 << 30, ok: true},
		{name: "v2 unlimited", file: "memory.max", content: "max\n"},
		{name: "v1 limit", file: "memory/memory.limit_in_bytes", content: "536870912\n", limit: 1 << 29, ok: true},
		{name: "v1 unlimited", file: "memory/memory.limit_in_bytes", content: "9223372036854771712\n"},
		{name: "garbage", file: "memory.max", content: "lots\n", err: true},
		{name: "no cgroup", file: "other", content: ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			write(t, filepath.Join(root, tc.file), tc.content)
			limit, ok, err := Container(root)
			if (err != nil) != tc.err || ok != tc.ok || limit != tc.limit {
				t.Fatalf("Container = %d, %t, %v; want %d, %t, error %t", limit, ok, err, tc.limit, tc.ok, tc.err)
			}
		})
	}
}

func TestApply(t *testing.T) {
	prev := debug.SetMemoryLimit(-1)
	t.Cleanup(func() { debug.SetMemoryLimit(prev) })

	root := t.TempDir()
	write(t, filepath.Join(root, "memory.max"), "1000000000\n")
	t.Setenv("GOMEMLIMIT", "")
	if soft, why := Apply(root); soft != 900000000 || debug.SetMemoryLimit(-1) != 900000000 {
		t.Fatalf("Apply = %d (%s), runtime limit %d; want 900000000", soft, why, debug.SetMemoryLimit(-1))
	}

	debug.SetMemoryLimit(prev)
	t.Setenv("GOMEMLIMIT", "500MiB")
	if soft, why := Apply(root); soft != 0 || debug.SetMemoryLimit(-1) != prev {
		t.Fatalf("with GOMEMLIMIT set, Apply = %d (%s); want the user's setting left alone", soft, why)
	}
}
