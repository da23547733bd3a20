package container

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// Stats is a container's resource use as its cgroup accounts it.
type Stats struct {
	Read     time.Time
	CPUUsage time.Duration // CPU time of all its processes, user and system
	// MemoryUsage includes the page cache; MemoryInactiveFile is the part
	// of it the kernel reclaims first (what docker stats subtracts).
	MemoryUsage        int64
	MemoryLimit        int64 // 0: no limit
	MemoryInactiveFile int64
	Pids               int64
	PidsLimit          int64 // 0: no limit
	IOReadBytes        int64
	IOWriteBytes       int64
}

// ErrNoStats is returned by Stats for a container that has no cgroup.
var ErrNoStats = errors.New("the container has no cgroup")

// Stats reads the container's resource use.
func (c *Container) Stats() (Stats, error) {
	if c.cg == nil {
		return Stats{}, ErrNoStats
	}
	st, err := c.cg.usage()
	if err != nil {
		return Stats{}, fmt.Errorf("read cgroup: %w", err)
	}
	st.Read = time.Now()
	return st, nil
}

// Pids lists the processes of the container (its init and everything it
// and exec'd processes started), as the host's PID namespace numbers them.
func (c *Container) Pids() []int {
	if c.cg == nil {
		return nil
	}
	return c.cg.procs()
}

func (c *v1Cgroup) procs() []int {
	b, _ := os.ReadFile(filepath.Join(c.dir("pids"), "cgroup.procs"))
	return parsePids(b)
}

func (c *v1Cgroup) usage() (Stats, error) {
	var st Stats
	cpu, err := readInt(filepath.Join(c.dir("cpu"), "cpuacct.usage"))
	if errors.Is(err, os.ErrNotExist) {
		// cpuacct is not mounted with cpu.
		cpu, err = readInt(filepath.Join(c.d.dir("cpuacct", c.n), "cpuacct.usage"))
	}
	switch {
	case err == nil:
		st.CPUUsage = time.Duration(cpu)
	case errors.Is(err, os.ErrNotExist):
		// No cpuacct hierarchy holds the container: count its processes'
		// own CPU times (and those of the children they reaped).
		st.CPUUsage = procsCPU(c.procs())
	default:
		return st, err
	}
	mem := c.dir("memory")
	if st.MemoryUsage, err = readInt(filepath.Join(mem, "memory.usage_in_bytes")); err != nil {
		return st, err
	}
	if limit, err := readInt(filepath.Join(mem, "memory.limit_in_bytes")); err == nil && limit < 1<<62 {
		st.MemoryLimit = limit
	}
	if b, err := os.ReadFile(filepath.Join(mem, "memory.stat")); err == nil {
		st.MemoryInactiveFile = kvValue(b, "total_inactive_file")
	}
	st.Pids, _ = readInt(filepath.Join(c.dir("pids"), "pids.current"))
	st.PidsLimit, _ = readInt(filepath.Join(c.dir("pids"), "pids.max"))
	if b, err := os.ReadFile(filepath.Join(c.d.dir("blkio", c.n), "blkio.throttle.io_service_bytes")); err == nil {
		s := bufio.NewScanner(bytes.NewReader(b))
		for s.Scan() {
			f := strings.Fields(s.Text())
			if len(f) != 3 {
				continue
			}
			n, _ := strconv.ParseInt(f[2], 10, 64)
			switch f[1] {
			case "Read":
				st.IOReadBytes += n
			case "Write":
				st.IOWriteBytes += n
			}
		}
	}
	return st, nil
}

func (c *v2Cgroup) procs() []int {
	b, _ := os.ReadFile(filepath.Join(c.path, "cgroup.procs"))
	return parsePids(b)
}

func (c *v2Cgroup) usage() (Stats, error) {
	var st Stats
	b, err := os.ReadFile(filepath.Join(c.path, "cpu.stat"))
	if err != nil {
		return st, err
	}
	st.CPUUsage = time.Duration(kvValue(b, "usage_usec")) * time.Microsecond
	if c.avail["memory"] {
		if st.MemoryUsage, err = readInt(filepath.Join(c.path, "memory.current")); err != nil {
			return st, err
		}
		st.MemoryLimit, _ = readInt(filepath.Join(c.path, "memory.max"))
		if b, err := os.ReadFile(filepath.Join(c.path, "memory.stat")); err == nil {
			st.MemoryInactiveFile = kvValue(b, "inactive_file")
		}
	}
	st.Pids, _ = readInt(filepath.Join(c.path, "pids.current"))
	st.PidsLimit, _ = readInt(filepath.Join(c.path, "pids.max"))
	if b, err := os.ReadFile(filepath.Join(c.path, "io.stat")); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			for _, f := range strings.Fields(line) {
				k, v, _ := strings.Cut(f, "=")
				n, _ := strconv.ParseInt(v, 10, 64)
				switch k {
				case "rbytes":
					st.IOReadBytes += n
				case "wbytes":
					st.IOWriteBytes += n
				}
			}
		}
	}
	return st, nil
}

// readInt reads a cgroup file holding one number; "max" reads as 0 (no
// limit).
func readInt(path string) (int64, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	s := strings.TrimSpace(string(b))
	if s == "max" {
		return 0, nil
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", path, err)
	}
	return n, nil
}

// procsCPU sums the CPU time of processes and of their reaped children,
// from /proc/PID/stat (fields utime, stime, cutime, cstime in USER_HZ
// ticks, 100 a second).
func procsCPU(pids []int) time.Duration {
	var ticks uint64
	for _, pid := range pids {
		b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
		if err != nil {
			continue
		}
		i := bytes.LastIndexByte(b, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(string(b[i+1:]))
		if len(f) < 15 {
			continue
		}
		for _, k := range []int{11, 12, 13, 14} {
			n, _ := strconv.ParseUint(f[k], 10, 64)
			ticks += n
		}
	}
	return time.Duration(ticks) * (time.Second / 100)
}

// ErrNoFreezer is returned by Freeze where the container's cgroup cannot
// be frozen (cgroup v1 without the freezer hierarchy joined).
var ErrNoFreezer = errors.New("pausing containers needs cgroup v2")

// Freeze stops every process of the container where it is (pause), or
// lets them go on (unpause), and returns once the kernel says so.
func (c *Container) Freeze(frozen bool) error {
	if c.cg == nil {
		return ErrNoStats
	}
	return c.cg.freeze(frozen)
}

func (c *v1Cgroup) freeze(bool) error { return ErrNoFreezer }

func (c *v2Cgroup) freeze(frozen bool) error {
	v, want := "0", "frozen 0"
	if frozen {
		v, want = "1", "frozen 1"
	}
	if err := writeFile(filepath.Join(c.path, "cgroup.freeze"), v); err != nil {
		return fmt.Errorf("freeze: %w", err)
	}
	// The freeze completes asynchronously: cgroup.events says when.
	for i := 0; i < 200; i++ {
		b, err := os.ReadFile(filepath.Join(c.path, "cgroup.events"))
		if err != nil {
			return fmt.Errorf("freeze: %w", err)
		}
		if strings.Contains(string(b), want) {
			return nil
		}
		time.Sleep(5 * time.Millisecond)
	}
	return fmt.Errorf("freeze: the cgroup did not reach %q", want)
}
