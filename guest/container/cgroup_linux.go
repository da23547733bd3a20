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

	"github.com/containerd/cgroups/v3"
	"github.com/containerd/cgroups/v3/cgroup1"
	"github.com/containerd/cgroups/v3/cgroup2"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// cgroupDriver creates and finds container cgroups in one cgroup version.
//
// A cgroup is made for each warm helper before the helper is started, and
// the helper is born inside it: moving a running process between cgroups
// takes a global lock whose writer waits for an RCU grace period (several
// milliseconds, stalling every fork and exit meanwhile). Limits are written
// when the helper becomes a container.
type cgroupDriver interface {
	// create makes a cgroup with the default device rules and no limits.
	create(name string) (cgroup, error)
	// list names the cgroups under the parent.
	list() ([]string, error)
	// load finds an existing cgroup; ok is false when none exists.
	load(name string) (cg cgroup, ok bool, err error)
	// enterThread moves the calling thread into cg (v1), so that what it
	// forks is born there; leaveThread moves it back. Both are no-ops on
	// v2, which forks into a cgroup through dirFD.
	enterThread(cg cgroup) error
	leaveThread() error
}

// cgroup is one container's cgroup.
type cgroup interface {
	name() string
	// joinThread moves the calling thread into the cgroup (v1 only: v2
	// forks into a cgroup through dirFD instead).
	joinThread() error
	setLimits(res Resources, privileged bool) error
	// dirFD opens the cgroup directory for CLONE_INTO_CGROUP, or returns -1
	// when the version has no such thing.
	dirFD() (int, error)
	oomKilled() bool
	// killAll sends SIGKILL to every process in the cgroup.
	killAll()
	// empty reports whether no process is left.
	empty() bool
	// procs lists the processes in the cgroup.
	procs() []int
	// usage reads the resource use the cgroup accounts.
	usage() (Stats, error)
	// freeze stops or resumes every process in the cgroup.
	freeze(frozen bool) error
	remove() error
}

// The device rules of a non-privileged container: Docker's default (mknod of
// anything, read and write of the standard nodes, terminals and tun only).
func deviceRules(privileged bool) []specs.LinuxDeviceCgroup {
	// Major and minor are always set (-1 is the wildcard): the v2 device
	// filter dereferences them.
	n := func(v int64) *int64 { return &v }
	wild := n(-1)
	if privileged {
		return []specs.LinuxDeviceCgroup{{Allow: true, Type: "a", Major: wild, Minor: wild, Access: "rwm"}}
	}
	return []specs.LinuxDeviceCgroup{
		{Allow: false, Type: "a", Major: wild, Minor: wild, Access: "rwm"},
		{Allow: true, Type: "c", Major: wild, Minor: wild, Access: "m"},
		{Allow: true, Type: "b", Major: wild, Minor: wild, Access: "m"},
		{Allow: true, Type: "c", Major: n(1), Minor: n(3), Access: "rwm"},    // null
		{Allow: true, Type: "c", Major: n(1), Minor: n(5), Access: "rwm"},    // zero
		{Allow: true, Type: "c", Major: n(1), Minor: n(7), Access: "rwm"},    // full
		{Allow: true, Type: "c", Major: n(1), Minor: n(8), Access: "rwm"},    // random
		{Allow: true, Type: "c", Major: n(1), Minor: n(9), Access: "rwm"},    // urandom
		{Allow: true, Type: "c", Major: n(5), Minor: n(0), Access: "rwm"},    // tty
		{Allow: true, Type: "c", Major: n(5), Minor: n(1), Access: "rwm"},    // console
		{Allow: true, Type: "c", Major: n(5), Minor: n(2), Access: "rwm"},    // ptmx
		{Allow: true, Type: "c", Major: n(136), Minor: wild, Access: "rwm"},  // pts
		{Allow: true, Type: "c", Major: n(10), Minor: n(200), Access: "rwm"}, // tun
	}
}

const cpuPeriod = 100000 // µs, Docker's default CFS period

func cpuQuota(nano int64) int64 {
	q := nano * cpuPeriod / 1e9
	if q < 1000 {
		q = 1000
	}
	return q
}

// newCgroupDriver picks the driver for the host's cgroup mode.
func newCgroupDriver(mode, root, parent string) (cgroupDriver, error) {
	if mode == "" {
		switch cgroups.Mode() {
		case cgroups.Unified:
			mode = "v2"
		case cgroups.Legacy, cgroups.Hybrid:
			mode = "v1"
		default:
			return nil, errors.New("no cgroup file system mounted at /sys/fs/cgroup")
		}
	}
	switch mode {
	case "v2":
		if root == "" {
			root = "/sys/fs/cgroup"
		}
		d := &v2Driver{mount: root, parent: parent}
		return d, nil
	case "v1":
		if root == "" {
			root = "/sys/fs/cgroup"
		}
		d := &v1Driver{root: root, parent: parent}
		_, err := os.Stat(filepath.Join(root, "memory", "memory.memsw.limit_in_bytes"))
		d.memsw = err == nil
		return d, nil
	}
	return nil, fmt.Errorf("unknown cgroup mode %q", mode)
}

// ---- cgroup v1 ----

type v1Driver struct {
	root, parent string
	memsw        bool              // swap accounting is on
	home         map[string]string // the spawning thread's own cgroup per hierarchy
}

// Only the controllers that limit or protect: joining every hierarchy (as
// runc does) costs a mkdir, a write and an rmdir each, for nothing we use.
var v1Controllers = []string{"memory", "cpu", "pids", "devices"}

func (d *v1Driver) dir(ctrl, name string) string {
	return filepath.Join(d.root, ctrl, d.parent, name)
}

func (d *v1Driver) hierarchy() ([]cgroup1.Subsystem, error) {
	return []cgroup1.Subsystem{
		cgroup1.NewMemory(d.root),
		cgroup1.NewCpu(d.root),
		cgroup1.NewPids(d.root),
		cgroup1.NewDevices(d.root),
	}, nil
}

func (d *v1Driver) create(name string) (cgroup, error) {
	r := &specs.LinuxResources{Devices: deviceRules(false)}
	_, err := cgroup1.New(cgroup1.StaticPath("/"+d.parent+"/"+name), r, cgroup1.WithHierarchy(d.hierarchy))
	c := &v1Cgroup{d: d, n: name}
	if err != nil {
		_ = c.remove()
		return nil, fmt.Errorf("create cgroup: %w", err)
	}
	return c, nil
}

func (d *v1Driver) load(name string) (cgroup, bool, error) {
	for _, ctrl := range v1Controllers {
		if _, err := os.Stat(d.dir(ctrl, name)); err == nil {
			return &v1Cgroup{d: d, n: name}, true, nil
		}
	}
	return nil, false, nil
}

func (d *v1Driver) list() ([]string, error) {
	seen := map[string]bool{}
	var out []string
	for _, ctrl := range v1Controllers {
		ents, err := os.ReadDir(filepath.Join(d.root, ctrl, d.parent))
		if err != nil {
			continue
		}
		for _, e := range ents {
			if e.IsDir() && !seen[e.Name()] {
				seen[e.Name()] = true
				out = append(out, e.Name())
			}
		}
	}
	return out, nil
}

// enterThread writes "0" to each hierarchy's tasks file: the kernel moves
// the writing thread without taking the global threadgroup lock, which a
// write of any other pid (and any write to cgroup.procs) takes.
func (d *v1Driver) enterThread(cg cgroup) error {
	if d.home == nil {
		home, err := threadCgroups()
		if err != nil {
			return err
		}
		d.home = home
	}
	if err := cg.joinThread(); err != nil {
		_ = d.leaveThread()
		return err
	}
	return nil
}

func (d *v1Driver) leaveThread() error {
	var errs []error
	for _, ctrl := range v1Controllers {
		if err := writeFile(filepath.Join(d.root, ctrl, d.home[ctrl], "tasks"), "0"); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// threadCgroups reads the calling thread's v1 cgroup paths.
func threadCgroups() (map[string]string, error) {
	b, err := os.ReadFile("/proc/thread-self/cgroup")
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		parts := strings.SplitN(line, ":", 3)
		if len(parts) != 3 {
			continue
		}
		for _, c := range strings.Split(parts[1], ",") {
			out[c] = parts[2]
		}
	}
	for _, ctrl := range v1Controllers {
		if _, ok := out[ctrl]; !ok {
			return nil, fmt.Errorf("cgroup v1 controller %s is not mounted", ctrl)
		}
	}
	return out, nil
}

type v1Cgroup struct {
	d *v1Driver
	n string
}

func (c *v1Cgroup) name() string { return c.n }

func (c *v1Cgroup) dir(ctrl string) string { return c.d.dir(ctrl, c.n) }

func (c *v1Cgroup) joinThread() error {
	for _, ctrl := range v1Controllers {
		if err := writeFile(filepath.Join(c.dir(ctrl), "tasks"), "0"); err != nil {
			return fmt.Errorf("join cgroup: %w", err)
		}
	}
	return nil
}

func (c *v1Cgroup) setLimits(res Resources, privileged bool) error {
	var w []string // file, value pairs
	if res.Memory > 0 {
		m := strconv.FormatInt(res.Memory, 10)
		w = append(w, filepath.Join(c.dir("memory"), "memory.limit_in_bytes"), m)
		if c.d.memsw { // memory plus swap: swap must not defeat the limit
			w = append(w, filepath.Join(c.dir("memory"), "memory.memsw.limit_in_bytes"), m)
		}
	}
	if res.NanoCPUs > 0 {
		w = append(w,
			filepath.Join(c.dir("cpu"), "cpu.cfs_period_us"), strconv.Itoa(cpuPeriod),
			filepath.Join(c.dir("cpu"), "cpu.cfs_quota_us"), strconv.FormatInt(cpuQuota(res.NanoCPUs), 10))
	}
	if res.PidsLimit > 0 {
		w = append(w, filepath.Join(c.dir("pids"), "pids.max"), strconv.FormatInt(res.PidsLimit, 10))
	}
	if privileged {
		w = append(w, filepath.Join(c.dir("devices"), "devices.allow"), "a *:* rwm")
	}
	for i := 0; i < len(w); i += 2 {
		if err := writeFile(w[i], w[i+1]); err != nil {
			return fmt.Errorf("set cgroup limit: %w", err)
		}
	}
	return nil
}

func (c *v1Cgroup) dirFD() (int, error) { return -1, nil }

func (c *v1Cgroup) oomKilled() bool {
	b, err := os.ReadFile(filepath.Join(c.dir("memory"), "memory.oom_control"))
	if err != nil {
		return false
	}
	return kvValue(b, "oom_kill") > 0
}

func (c *v1Cgroup) pids() []int {
	var out []int
	for _, ctrl := range v1Controllers {
		b, err := os.ReadFile(filepath.Join(c.dir(ctrl), "cgroup.procs"))
		if err == nil {
			out = append(out, parsePids(b)...)
		}
	}
	return out
}

func (c *v1Cgroup) killAll() {
	for _, pid := range c.pids() {
		_ = unix.Kill(pid, unix.SIGKILL)
	}
}

func (c *v1Cgroup) empty() bool { return len(c.pids()) == 0 }

func (c *v1Cgroup) remove() error {
	var errs []error
	for _, ctrl := range v1Controllers {
		if err := rmdirCgroup(c.dir(ctrl)); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// rmdirCgroup removes one cgroup directory (cgroup directories are removed
// with rmdir alone, their files go with them). A cgroup whose last process
// has just been reaped can still be busy for a moment.
func rmdirCgroup(p string) error {
	var err error
	for i := 0; i < 50; i++ {
		err = unix.Rmdir(p)
		if err == nil || err == unix.ENOENT {
			return nil
		}
		if err != unix.EBUSY {
			break
		}
		sleepBackoff(i)
	}
	return fmt.Errorf("remove cgroup %s: %w", p, err)
}

// ---- cgroup v2 ----

type v2Driver struct {
	mount, parent string
}

func (d *v2Driver) group(name string) string { return "/" + d.parent + "/" + name }

func (d *v2Driver) create(name string) (cgroup, error) {
	// Every controller the hierarchy offers is enabled (nil fields would
	// leave it out), so that accounting and OOM events exist even without
	// limits.
	avail := d.available()
	r := &cgroup2.Resources{Devices: deviceRules(false)}
	if avail["memory"] {
		r.Memory = &cgroup2.Memory{}
	}
	if avail["cpu"] {
		r.CPU = &cgroup2.CPU{}
	}
	if avail["pids"] {
		r.Pids = &cgroup2.Pids{}
	}
	m, err := cgroup2.NewManager(d.mount, d.group(name), r)
	if err != nil {
		_ = rmdirCgroup(filepath.Join(d.mount, d.group(name)))
		return nil, fmt.Errorf("create cgroup: %w", err)
	}
	return &v2Cgroup{n: name, path: filepath.Join(d.mount, d.group(name)), m: m, avail: avail}, nil
}

func (d *v2Driver) available() map[string]bool {
	b, _ := os.ReadFile(filepath.Join(d.mount, "cgroup.controllers"))
	out := map[string]bool{}
	for _, f := range strings.Fields(string(b)) {
		out[f] = true
	}
	return out
}

func (d *v2Driver) load(name string) (cgroup, bool, error) {
	p := filepath.Join(d.mount, d.group(name))
	if _, err := os.Stat(p); errors.Is(err, os.ErrNotExist) {
		return nil, false, nil
	}
	m, err := cgroup2.Load(d.group(name), cgroup2.WithMountpoint(d.mount))
	if err != nil {
		return nil, false, err
	}
	return &v2Cgroup{n: name, path: p, m: m, avail: d.available()}, true, nil
}

func (d *v2Driver) list() ([]string, error) {
	ents, err := os.ReadDir(filepath.Join(d.mount, d.parent))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []string
	for _, e := range ents {
		if e.IsDir() {
			out = append(out, e.Name())
		}
	}
	return out, nil
}

func (d *v2Driver) enterThread(cgroup) error { return nil }
func (d *v2Driver) leaveThread() error       { return nil }

type v2Cgroup struct {
	n, path string
	m       *cgroup2.Manager
	avail   map[string]bool
}

func (c *v2Cgroup) name() string { return c.n }

func (c *v2Cgroup) joinThread() error {
	return errors.New("cgroup v2 does not move single threads of a domain cgroup")
}

func (c *v2Cgroup) setLimits(res Resources, privileged bool) error {
	var w []string
	if res.Memory > 0 && c.avail["memory"] {
		w = append(w, "memory.max", strconv.FormatInt(res.Memory, 10))
		if _, err := os.Stat(filepath.Join(c.path, "memory.swap.max")); err == nil {
			w = append(w, "memory.swap.max", "0") // swap must not defeat the limit
		}
	}
	if res.NanoCPUs > 0 && c.avail["cpu"] {
		w = append(w, "cpu.max", strconv.FormatInt(cpuQuota(res.NanoCPUs), 10)+" "+strconv.Itoa(cpuPeriod))
	}
	if res.PidsLimit > 0 && c.avail["pids"] {
		w = append(w, "pids.max", strconv.FormatInt(res.PidsLimit, 10))
	}
	for i := 0; i < len(w); i += 2 {
		if err := writeFile(filepath.Join(c.path, w[i]), w[i+1]); err != nil {
			return fmt.Errorf("set cgroup limit: %w", err)
		}
	}
	if privileged {
		if err := c.m.Update(&cgroup2.Resources{Devices: deviceRules(true)}); err != nil {
			return fmt.Errorf("allow all devices: %w", err)
		}
	}
	return nil
}

func (c *v2Cgroup) dirFD() (int, error) {
	fd, err := unix.Open(c.path, unix.O_DIRECTORY|unix.O_PATH|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, fmt.Errorf("open cgroup: %w", err)
	}
	return fd, nil
}

func (c *v2Cgroup) oomKilled() bool {
	b, err := os.ReadFile(filepath.Join(c.path, "memory.events"))
	if err != nil {
		return false
	}
	return kvValue(b, "oom_kill") > 0
}

func (c *v2Cgroup) killAll() {
	if err := writeFile(filepath.Join(c.path, "cgroup.kill"), "1"); err == nil {
		return
	}
	b, _ := os.ReadFile(filepath.Join(c.path, "cgroup.procs"))
	for _, pid := range parsePids(b) {
		_ = unix.Kill(pid, unix.SIGKILL)
	}
}

func (c *v2Cgroup) empty() bool {
	b, err := os.ReadFile(filepath.Join(c.path, "cgroup.procs"))
	return err != nil || len(parsePids(b)) == 0
}

func (c *v2Cgroup) remove() error { return rmdirCgroup(c.path) }

// ---- helpers ----

func writeFile(path, value string) error {
	fd, err := unix.Open(path, unix.O_WRONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open %s: %w", path, err)
	}
	defer unix.Close(fd)
	if _, err := unix.Write(fd, []byte(value)); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

func kvValue(b []byte, key string) int64 {
	s := bufio.NewScanner(bytes.NewReader(b))
	for s.Scan() {
		k, v, ok := strings.Cut(s.Text(), " ")
		if ok && k == key {
			n, _ := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			return n
		}
	}
	return 0
}

func parsePids(b []byte) []int {
	var out []int
	for _, f := range strings.Fields(string(b)) {
		if n, err := strconv.Atoi(f); err == nil {
			out = append(out, n)
		}
	}
	return out
}
