package logomesh

import (
	"math"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
)

var tuneOnce sync.Once

// tuneRuntime fits the Go runtime to the container's cgroup limits, which Go 1.19 does not
// read itself: GOMAXPROCS to the CPU quota (a 50% quota on a many-core host otherwise runs
// many threads that get throttled), and a soft memory limit at 80% of the memory limit so
// that the garbage collector works harder before the kernel's OOM killer acts. GOMAXPROCS
// and GOMEMLIMIT in the environment win.
func tuneRuntime() {
	tuneOnce.Do(func() {
		if os.Getenv("GOMAXPROCS") == "" {
			if n := cpuLimit("/sys/fs/cgroup"); n > 0 && n < runtime.GOMAXPROCS(0) {
				runtime.GOMAXPROCS(n)
			}
		}
		if os.Getenv("GOMEMLIMIT") == "" {
			if limit := memoryLimit("/sys/fs/cgroup"); limit > 0 {
				debug.SetMemoryLimit(limit / 5 * 4)
			}
		}
	})
}

// cpuLimit is the CPU quota in whole CPUs (rounded up), or 0 when there is none.
func cpuLimit(root string) int {
	var quota, period float64
	if b, err := os.ReadFile(filepath.Join(root, "cpu.max")); err == nil { // cgroup v2
		f := strings.Fields(string(b))
		if len(f) != 2 || f[0] == "max" {
			return 0
		}
		quota, _ = strconv.ParseFloat(f[0], 64)
		period, _ = strconv.ParseFloat(f[1], 64)
	} else {
		for _, dir := range []string{"cpu", "cpu,cpuacct", "cpuacct,cpu"} {
			q, err1 := readNumber(filepath.Join(root, dir, "cpu.cfs_quota_us"))
			per, err2 := readNumber(filepath.Join(root, dir, "cpu.cfs_period_us"))
			if err1 == nil && err2 == nil {
				quota, period = q, per
				break
			}
		}
	}
	if quota <= 0 || period <= 0 {
		return 0
	}
	return int(math.Ceil(quota / period))
}

// memoryLimit is the cgroup memory limit in bytes, or 0 when there is none.
func memoryLimit(root string) int64 {
	for _, file := range []string{"memory.max", "memory/memory.limit_in_bytes"} {
		b, err := os.ReadFile(filepath.Join(root, file))
		if err != nil {
			continue
		}
		v, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
		// "max", or v1's "no limit" (a page-rounded MaxInt64).
		if err != nil || v <= 0 || v >= 1<<50 {
			return 0
		}
		return v
	}
	return 0
}

func readNumber(path string) (float64, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	return strconv.ParseFloat(strings.TrimSpace(string(b)), 64)
}
