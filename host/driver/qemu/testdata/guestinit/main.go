// Command guestinit is PID 1 of the test guest that the qemu driver's
// integration tests boot when no real vmbox image is built. It does what
// the real agent does on the transport side: loads the virtio modules,
// configures eth0 with user networking's static address, listens on the
// agent's TCP port there, greets each connection with an SSH-like banner,
// and then serves line commands (an echo service with a few extras) until
// the host disconnects.
package main

import (
	"bufio"
	"bytes"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

const (
	iface   = "eth0"
	address = "10.0.2.15"
	netmask = "255.255.255.0"
	port    = "2222"
	banner  = "SSH-2.0-guestinit\n"
)

// Load order: dependencies first. Missing ones are built in or absent.
var modules = []string{
	"virtio_ring", "virtio", "virtio_mmio",
	"virtio_pci_legacy_dev", "virtio_pci_modern_dev", "virtio_pci",
	"failover", "net_failover", "virtio_net", "virtio_blk", "virtio-rng",
}

func main() {
	logf("started")
	for _, m := range []struct{ src, dst, typ string }{
		{"devtmpfs", "/dev", "devtmpfs"}, {"proc", "/proc", "proc"}, {"sysfs", "/sys", "sysfs"},
	} {
		os.MkdirAll(m.dst, 0o755)
		if err := unix.Mount(m.src, m.dst, m.typ, 0, ""); err != nil && err != unix.EBUSY {
			logf("mount %s: %v", m.dst, err)
		}
	}
	loadModules()
	if err := configureNetwork(30 * time.Second); err != nil {
		logf("%v", err)
		halt()
	}
	l, err := net.Listen("tcp", net.JoinHostPort(address, port))
	if err != nil {
		logf("listen: %v", err)
		halt()
	}
	logf("serving on %s", l.Addr())
	for {
		c, err := l.Accept()
		if err != nil {
			logf("accept: %v", err)
			continue
		}
		go func() {
			defer c.Close()
			if _, err := c.Write([]byte(banner)); err != nil {
				logf("write banner: %v", err)
				return
			}
			serve(c)
		}()
	}
}

// configureNetwork waits for eth0 (it appears asynchronously after
// virtio_net loads) and gives it the static address, with ioctls: the
// test guest has no tools.
func configureNetwork(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		if _, err := os.Stat("/sys/class/net/" + iface); err == nil {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("no interface %s", iface)
		}
		time.Sleep(10 * time.Millisecond)
	}
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("socket: %w", err)
	}
	defer unix.Close(fd)
	for _, set := range []struct {
		req  uint
		addr string
	}{{unix.SIOCSIFADDR, address}, {unix.SIOCSIFNETMASK, netmask}} {
		ifr, err := unix.NewIfreq(iface)
		if err != nil {
			return err
		}
		if err := ifr.SetInet4Addr(net.ParseIP(set.addr).To4()); err != nil {
			return err
		}
		if err := unix.IoctlIfreq(fd, set.req, ifr); err != nil {
			return fmt.Errorf("set %s on %s: %w", set.addr, iface, err)
		}
	}
	ifr, err := unix.NewIfreq(iface)
	if err != nil {
		return err
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFFLAGS, ifr); err != nil {
		return fmt.Errorf("get flags of %s: %w", iface, err)
	}
	ifr.SetUint16(ifr.Uint16() | unix.IFF_UP)
	if err := unix.IoctlIfreq(fd, unix.SIOCSIFFLAGS, ifr); err != nil {
		return fmt.Errorf("bring %s up: %w", iface, err)
	}
	return nil
}

func logf(format string, args ...any) {
	fmt.Printf("guestinit: "+format+"\n", args...)
}

func halt() {
	unix.Sync()
	unix.Reboot(unix.LINUX_REBOOT_CMD_RESTART)
	select {}
}

func loadModules() {
	found := map[string]string{}
	filepath.WalkDir("/lib/modules", func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && strings.HasSuffix(p, ".ko") {
			found[strings.TrimSuffix(d.Name(), ".ko")] = p
		}
		return nil
	})
	for _, m := range modules {
		p, ok := found[m]
		if !ok {
			continue
		}
		f, err := os.Open(p)
		if err != nil {
			logf("module %s: %v", m, err)
			continue
		}
		if err := unix.FinitModule(int(f.Fd()), "", 0); err != nil && err != unix.EEXIST {
			logf("module %s: %v", m, err)
		}
		f.Close()
	}
}

func serve(c net.Conn) {
	r := bufio.NewReader(c)
	w := func(format string, args ...any) { fmt.Fprintf(c, format+"\n", args...) }
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			logf("session ended: %v", err)
			return // host went away
		}
		cmd, arg, _ := strings.Cut(strings.TrimSuffix(line, "\n"), " ")
		switch cmd {
		case "time":
			w("%d", time.Now().Unix())
		case "cmdline":
			b, _ := os.ReadFile("/proc/cmdline")
			w("%s", strings.TrimSpace(string(b)))
		case "cpus":
			b, _ := os.ReadFile("/sys/devices/system/cpu/online")
			w("%s", strings.TrimSpace(string(b)))
		case "online":
			// What the agent does after ready when booted with maxcpus=1.
			cpus, _ := filepath.Glob("/sys/devices/system/cpu/cpu[0-9]*/online")
			for _, c := range cpus {
				if err := os.WriteFile(c, []byte("1"), 0); err != nil {
					logf("online %s: %v", c, err)
				}
			}
			b, _ := os.ReadFile("/sys/devices/system/cpu/online")
			w("%s", strings.TrimSpace(string(b)))
		case "rng":
			// GRND_NONBLOCK fails with EAGAIN until the kernel RNG is ready.
			_, err := unix.Getrandom(make([]byte, 16), unix.GRND_NONBLOCK)
			w("%v", err == nil)
		case "uptime":
			b, _ := os.ReadFile("/proc/uptime")
			w("%s", strings.TrimSpace(string(b)))
		case "disk-write":
			w("%s", diskWrite(arg))
		case "disk-read":
			w("%s", diskRead(arg))
		case "fsync-bench":
			w("%s", fsyncBench(arg))
		case "poweroff":
			w("bye")
			flush()
			unix.Sync()
			unix.Reboot(unix.LINUX_REBOOT_CMD_RESTART)
		case "panic":
			w("bye")
			flush()
			os.Exit(3) // PID 1 exiting panics the kernel
		default:
			w("%s", strings.TrimSuffix(line, "\n"))
		}
	}
}

// flush gives the network stack time to deliver the last answer: the
// commands that end the VM would otherwise cut it off, since TCP sends
// asynchronously.
func flush() { time.Sleep(300 * time.Millisecond) }

const disk = "/dev/vda"

// diskWrite writes text at offset 0 of the data disk and flushes it.
func diskWrite(text string) string {
	f, err := os.OpenFile(disk, os.O_RDWR, 0)
	if err != nil {
		return "error " + err.Error()
	}
	defer f.Close()
	if _, err := f.WriteAt([]byte(text), 0); err != nil {
		return "error " + err.Error()
	}
	if err := f.Sync(); err != nil {
		return "error " + err.Error()
	}
	return "ok"
}

func diskRead(n string) string {
	size, _ := strconv.Atoi(n)
	f, err := os.Open(disk)
	if err != nil {
		return "error " + err.Error()
	}
	defer f.Close()
	b := make([]byte, size)
	if _, err := f.ReadAt(b, 0); err != nil {
		return "error " + err.Error()
	}
	return string(b)
}

// fsyncBench writes n 4 KiB blocks, each followed by fdatasync, as a
// journaling file system commits, and reports the elapsed microseconds.
func fsyncBench(n string) string {
	count, _ := strconv.Atoi(n)
	f, err := os.OpenFile(disk, os.O_RDWR, 0)
	if err != nil {
		return "error " + err.Error()
	}
	defer f.Close()
	block := bytes.Repeat([]byte{0xa5}, 4096)
	start := time.Now()
	for i := 0; i < count; i++ {
		if _, err := f.WriteAt(block, int64(1<<20+i*4096)); err != nil {
			return "error " + err.Error()
		}
		if err := unix.Fdatasync(int(f.Fd())); err != nil {
			return "error " + err.Error()
		}
	}
	return strconv.FormatInt(time.Since(start).Microseconds(), 10)
}
