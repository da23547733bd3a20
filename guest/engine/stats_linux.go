package engine

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/vmbox/vmbox/guest/container"
)

// ContainerStats is a container's resource use: its cgroup's accounting
// and its network interfaces' counters. A container that is not running
// uses nothing.
type ContainerStats struct {
	ID, Name string
	Running  bool
	container.Stats
	// Networks maps interface names (eth0, ...) to their counters, read
	// in the container's network namespace; loopback is left out.
	Networks map[string]NetworkCounters
}

// NetworkCounters are one interface's counters, as /proc/net/dev has them.
type NetworkCounters struct {
	RxBytes, RxPackets, RxErrors, RxDropped uint64
	TxBytes, TxPackets, TxErrors, TxDropped uint64
}

// Stats reads a container's resource use.
func (e *Engine) Stats(ref string) (ContainerStats, error) {
	c, err := e.lookup(ref)
	if err != nil {
		return ContainerStats{}, err
	}
	c.mu.Lock()
	rc, pid := c.rc, c.rec.State.Pid
	out := ContainerStats{ID: c.rec.ID, Name: c.rec.Name}
	c.mu.Unlock()
	if rc == nil {
		return out, nil
	}
	st, err := rc.Stats()
	if err != nil {
		return out, err
	}
	out.Running, out.Stats = true, st
	out.Networks = readNetDev(pid)
	return out, nil
}

// Top lists the processes of a running container.
func (e *Engine) Top(ref string) ([]int, error) {
	c, err := e.lookup(ref)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	rc := c.rc
	c.mu.Unlock()
	if rc == nil {
		return nil, fmt.Errorf("%w: %s", ErrNotRunning, ref)
	}
	return rc.Pids(), nil
}

// readNetDev reads the interface counters of pid's network namespace.
func readNetDev(pid int) map[string]NetworkCounters {
	if pid <= 0 {
		return nil
	}
	f, err := os.Open("/proc/" + strconv.Itoa(pid) + "/net/dev")
	if err != nil {
		return nil
	}
	defer f.Close()
	out := map[string]NetworkCounters{}
	s := bufio.NewScanner(f)
	for s.Scan() {
		name, rest, ok := strings.Cut(s.Text(), ":")
		name = strings.TrimSpace(name)
		if !ok || name == "lo" {
			continue
		}
		f := strings.Fields(rest)
		if len(f) < 16 {
			continue
		}
		n := func(i int) uint64 { v, _ := strconv.ParseUint(f[i], 10, 64); return v }
		out[name] = NetworkCounters{
			RxBytes: n(0), RxPackets: n(1), RxErrors: n(2), RxDropped: n(3),
			TxBytes: n(8), TxPackets: n(9), TxErrors: n(10), TxDropped: n(11),
		}
	}
	return out
}
