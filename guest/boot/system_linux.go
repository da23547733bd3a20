//go:build linux

package boot

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// SetClock sets the guest's wall clock, e.g. when the host pushes its time
// after the VM was suspended. Outside the guest it refuses.
func SetClock(t time.Time) error {
	if !inGuest() {
		return fmt.Errorf("set clock: %w", errNotGuest)
	}
	return setClock(t)
}

func setClock(t time.Time) error {
	ts := unix.NsecToTimespec(t.UnixNano())
	if err := unix.ClockSettime(unix.CLOCK_REALTIME, &ts); err != nil {
		return fmt.Errorf("set clock: %w", err)
	}
	return nil
}

// clockSlack is how far behind the host's estimate the guest clock may be
// before boot corrects it.
const clockSlack = time.Second

// bootClockTarget returns the time the guest clock should show, given the
// host's clock when it started the VM and how long the guest has been up,
// and whether now is far enough behind it to be set. A clock that is ahead
// is left alone: an RTC may well know better than a config written earlier.
func bootClockTarget(hostBoot time.Time, uptime time.Duration, now time.Time) (time.Time, bool) {
	if hostBoot.IsZero() {
		return time.Time{}, false
	}
	want := hostBoot.Add(uptime)
	return want, now.Before(want.Add(-clockSlack))
}

// syncBootClock sets the clock from the config's boot time when the RTC is
// absent (the clock starts at 1970) or behind.
func syncBootClock(hostBoot time.Time) (bool, error) {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_BOOTTIME, &ts); err != nil {
		return false, fmt.Errorf("read boot time: %w", err)
	}
	want, set := bootClockTarget(hostBoot, time.Duration(ts.Nano()), time.Now())
	if !set {
		return false, nil
	}
	return true, setClock(want)
}

func setHostname(name string) error {
	if err := unix.Sethostname([]byte(name)); err != nil {
		return fmt.Errorf("set hostname %q: %w", name, err)
	}
	return nil
}

// bringCPUsOnline brings CPUs online until want are (0: all present CPUs). The
// VM boots with maxcpus=1 because one vCPU boots fastest under emulation;
// the rest come online after the agent is ready. Outside the guest it
// refuses.
func bringCPUsOnline(want int) error {
	if !inGuest() {
		return fmt.Errorf("online CPUs: %w", errNotGuest)
	}
	_, err := onlineCPUs("/sys/devices/system/cpu", want)
	return err
}

// onlineCPUs onlines present-but-offline CPUs in ascending order until
// want are online, and returns how many it brought up.
func onlineCPUs(cpuDir string, want int) (int, error) {
	present, err := readCPUList(filepath.Join(cpuDir, "present"))
	if err != nil {
		return 0, err
	}
	online, err := readCPUList(filepath.Join(cpuDir, "online"))
	if err != nil {
		return 0, err
	}
	isOnline := map[int]bool{}
	for _, c := range online {
		isOnline[c] = true
	}
	if want <= 0 || want > len(present) {
		want = len(present)
	}
	count, brought := len(online), 0
	for _, c := range present {
		if count >= want {
			break
		}
		if isOnline[c] {
			continue
		}
		p := filepath.Join(cpuDir, "cpu"+strconv.Itoa(c), "online")
		if err := os.WriteFile(p, []byte("1"), 0); err != nil {
			return brought, fmt.Errorf("online cpu%d: %w", c, err)
		}
		count++
		brought++
	}
	return brought, nil
}

func readCPUList(p string) ([]int, error) {
	b, err := os.ReadFile(p)
	if err != nil {
		return nil, fmt.Errorf("read CPU list: %w", err)
	}
	l, err := parseCPUList(string(b))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", p, err)
	}
	return l, nil
}

// virtioIDVsock is the virtio device ID of a socket device.
const virtioIDVsock = 19

// hasVirtioDevice reports whether a virtio device with the given device ID
// is on the virtio bus (sysBus is /sys/bus/virtio/devices).
func hasVirtioDevice(sysBus string, id int) bool {
	ents, err := os.ReadDir(sysBus)
	if err != nil {
		return false
	}
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join(sysBus, e.Name(), "device"))
		if err != nil {
			continue
		}
		v, err := strconv.ParseUint(strings.TrimSpace(string(b)), 0, 32)
		if err == nil && int(v) == id {
			return true
		}
	}
	return false
}

// vsockLocalCID returns the guest's vsock context ID, or an error when
// there is no vsock transport.
func vsockLocalCID(dev string) (uint32, error) {
	fd, err := unix.Open(dev, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return 0, fmt.Errorf("vsock: %w", err)
	}
	defer unix.Close(fd)
	cid, err := unix.IoctlGetUint32(fd, unix.IOCTL_VM_SOCKETS_GET_LOCAL_CID)
	if err != nil {
		return 0, fmt.Errorf("vsock: get local CID: %w", err)
	}
	if cid == unix.VMADDR_CID_ANY {
		return 0, errors.New("vsock: no guest transport")
	}
	return cid, nil
}

// Vsock reports whether the VM has a virtio-vsock device and, if so, loads
// its transport and returns the guest's context ID; the agent then listens
// with AF_VSOCK on api.AgentPort. ok is false (with a nil error) when the
// VM has no such device.
func (s *System) Vsock(ctx context.Context) (cid uint32, ok bool, err error) {
	if !hasVirtioDevice("/sys/bus/virtio/devices", virtioIDVsock) {
		return 0, false, nil
	}
	if err := s.Modules.EnsureModule(ctx, "vmw_vsock_virtio_transport"); err != nil {
		return 0, false, err
	}
	if err := waitPath(ctx, "/dev/vsock"); err != nil {
		return 0, false, fmt.Errorf("vsock: %w", err)
	}
	cid, err = vsockLocalCID("/dev/vsock")
	if err != nil {
		return 0, false, err
	}
	return cid, true, nil
}
