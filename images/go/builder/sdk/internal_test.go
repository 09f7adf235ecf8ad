package logomesh

import (
	"os"
	"path/filepath"
	"testing"
)

func TestMatches(t *testing.T) {
	cases := []struct {
		pattern, topic string
		want           bool
	}{
		{"thought.added", "thought.added", true},
		{"thought.added", "thought.removed", false},
		{"thought.*", "thought.added", true},
		{"thought.*", "thought.a.b", true},
		{"thought.*", "thought", false},
		{"thought.*", "thoughts.added", false},
		{"*", "anything.at.all", true},
		{"*", "", true},
		{"x", "", false},
	}
	for _, c := range cases {
		if got := matches(c.pattern, c.topic); got != c.want {
			t.Errorf("matches(%q, %q) = %v", c.pattern, c.topic, got)
		}
	}
}

func writeFiles(t *testing.T, files map[string]string) string {
	t.Helper()
	root := t.TempDir()
	for name, text := range files {
		path := filepath.Join(root, name)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

func TestCgroupLimits(t *testing.T) {
	v1 := writeFiles(t, map[string]string{
		"cpu,cpuacct/cpu.cfs_quota_us":  "50000\n",
		"cpu,cpuacct/cpu.cfs_period_us": "100000\n",
		"memory/memory.limit_in_bytes":  "33554432\n",
	})
	if n := cpuLimit(v1); n != 1 {
		t.Errorf("v1 cpu = %d", n)
	}
	if m := memoryLimit(v1); m != 32<<20 {
		t.Errorf("v1 memory = %d", m)
	}
	v1none := writeFiles(t, map[string]string{
		"cpu/cpu.cfs_quota_us":         "-1\n",
		"cpu/cpu.cfs_period_us":        "100000\n",
		"memory/memory.limit_in_bytes": "9223372036854771712\n",
	})
	if n, m := cpuLimit(v1none), memoryLimit(v1none); n != 0 || m != 0 {
		t.Errorf("v1 unlimited = %d, %d", n, m)
	}
	v2 := writeFiles(t, map[string]string{"cpu.max": "250000 100000\n", "memory.max": "67108864\n"})
	if n, m := cpuLimit(v2), memoryLimit(v2); n != 3 || m != 64<<20 {
		t.Errorf("v2 = %d, %d", n, m)
	}
	v2none := writeFiles(t, map[string]string{"cpu.max": "max 100000\n", "memory.max": "max\n"})
	if n, m := cpuLimit(v2none), memoryLimit(v2none); n != 0 || m != 0 {
		t.Errorf("v2 unlimited = %d, %d", n, m)
	}
	if n, m := cpuLimit(t.TempDir()), memoryLimit(t.TempDir()); n != 0 || m != 0 {
		t.Errorf("no cgroup files = %d, %d", n, m)
	}
}
