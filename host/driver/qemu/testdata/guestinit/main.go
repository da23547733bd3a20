// Command guestinit is PID 1 of the test guest that the qemu driver's
// integration tests boot when no real vmbox image is built. It does what
// the real agent does on the transport side: loads the virtio modules,
// finds the virtio-serial port named vmbox.agent through sysfs, answers
// each hello with ready, and then serves line commands (an echo service
// with a few extras) until the host disconnects.
package main

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

const (
	hello    = "vmbox-hello\n"
	ready    = "vmbox-ready\n"
	portName = "vmbox.agent"
	banner   = "guestinit-banner\n"
)

// Load order: dependencies first. Missing ones are built in or absent.
var modules = []string{
	"virtio_ring", "virtio", "virtio_mmio",
	"virtio_pci_legacy_dev", "virtio_pci_modern_dev", "virtio_pci",
	"virtio_console", "virtio_blk", "virtio-rng",
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
	port, err := findPort(portName, 30*time.Second)
	if err != nil {
		logf("%v", err)
		halt()
	}
	f, err := os.OpenFile("/dev/"+port, os.O_RDWR, 0)
	if err != nil {
		logf("open port: %v", err)
		halt()
	}
	logf("serving on /dev/%s", port)
	for {
		waitHello(f)
		if _, err := io.WriteString(f, ready+banner); err != nil {
			logf("write ready: %v", err)
			continue
		}
		serve(f)
	}
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

// findPort polls sysfs: ports appear asynchronously and there is no udev.
func findPort(name string, timeout time.Duration) (string, error) {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		dirs, _ := filepath.Glob("/sys/class/virtio-ports/*")
		for _, d := range dirs {
			b, err := os.ReadFile(filepath.Join(d, "name"))
			if err == nil && strings.TrimSpace(string(b)) == name {
				return filepath.Base(d), nil
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	return "", fmt.Errorf("no virtio-serial port named %s", name)
}

// waitHello reads until the hello line. A read of 0 bytes means no host
// is connected; the port reports that at once, so poll.
func waitHello(f *os.File) {
	var buf []byte
	b := make([]byte, 256)
	for {
		n, err := f.Read(b)
		buf = append(buf, b[:n]...)
		if bytes.Contains(buf, []byte(hello)) {
			return
		}
		if len(buf) > 4096 {
			buf = buf[len(buf)-len(hello):]
		}
		if n == 0 || err != nil {
			time.Sleep(10 * time.Millisecond)
		}
	}
}

func serve(f *os.File) {
	r := bufio.NewReader(f)
	w := func(format string, args ...any) { fmt.Fprintf(f, format+"\n", args...) }
	started := false
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			logf("session ended: %v", err)
			return // host went away
		}
		// Like an SSH server, which skips lines that are not its peer's
		// version at the start, ignore hellos until the session has begun;
		// a hello later on is garbage that ends the session, as it would
		// end an SSH connection.
		if line == hello {
			if started {
				logf("hello inside a session: dropping the session")
				return
			}
			continue
		}
		started = true
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
			unix.Sync()
			unix.Reboot(unix.LINUX_REBOOT_CMD_RESTART)
		case "panic":
			w("bye")
			os.Exit(3) // PID 1 exiting panics the kernel
		default:
			w("%s", strings.TrimSuffix(line, "\n"))
		}
	}
}

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
