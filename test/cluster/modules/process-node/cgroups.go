package main

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/virtual-kubelet/virtual-kubelet/log"
)

// cgroups keeps every container of this cluster in a cgroup (v1) of its own under
// <cpu controller>/<name>/<pod uid>/<container>: it applies resources.limits.cpu as a CFS quota, and
// lets the node kill whatever a container left behind (even processes that left its process group).
// Without a writable cgroup v1 cpu controller, limits are not applied (logged once).
type cgroups struct {
	base string // "" when unavailable
}

const cpuController = "/sys/fs/cgroup/cpu"

func newCgroups(name string) *cgroups {
	if name == "" {
		return &cgroups{}
	}
	base := filepath.Join(cpuController, name)
	if err := os.MkdirAll(base, 0o755); err != nil {
		log.L.WithError(err).Warn("no writable cgroup v1 cpu controller: cpu limits are not applied, left-over processes are found by process group only")
		return &cgroups{}
	}
	return &cgroups{base: base}
}

func (c *cgroups) dir(path string) string { return filepath.Join(c.base, path) }

// create makes the cgroup of a container with a CFS quota of milliCPU (0 = no limit).
func (c *cgroups) create(path string, milliCPU int64) error {
	if c.base == "" {
		return nil
	}
	d := c.dir(path)
	if err := os.MkdirAll(d, 0o755); err != nil {
		return err
	}
	quota := "-1"
	if milliCPU > 0 {
		quota = strconv.FormatInt(milliCPU*100, 10) // period 100000 µs
	}
	if err := os.WriteFile(filepath.Join(d, "cpu.cfs_period_us"), []byte("100000"), 0o644); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(d, "cpu.cfs_quota_us"), []byte(quota), 0o644)
}

func (c *cgroups) procsFile(path string) string {
	if c.base == "" {
		return ""
	}
	return filepath.Join(c.dir(path), "cgroup.procs")
}

func (c *cgroups) pids(path string) []int {
	if c.base == "" {
		return nil
	}
	var out []int
	_ = filepath.Walk(c.dir(path), func(p string, info os.FileInfo, err error) error {
		if err != nil || info.IsDir() || info.Name() != "cgroup.procs" {
			return nil
		}
		data, _ := os.ReadFile(p)
		for _, f := range strings.Fields(string(data)) {
			if pid, err := strconv.Atoi(f); err == nil {
				out = append(out, pid)
			}
		}
		return nil
	})
	return out
}

// killAll SIGKILLs every process left in the cgroup (and below it).
func (c *cgroups) killAll(path string) {
	for i := 0; i < 20; i++ {
		pids := c.pids(path)
		if len(pids) == 0 {
			return
		}
		for _, pid := range pids {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (c *cgroups) remove(path string) {
	if c.base == "" {
		return
	}
	c.killAll(path)
	// Children first.
	var dirs []string
	_ = filepath.Walk(c.dir(path), func(p string, info os.FileInfo, err error) error {
		if err == nil && info.IsDir() {
			dirs = append(dirs, p)
		}
		return nil
	})
	for i := len(dirs) - 1; i >= 0; i-- {
		_ = syscall.Rmdir(dirs[i])
	}
}
