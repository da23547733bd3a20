package network

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"syscall"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
)

// Environment markers of the test binary's re-executions.
const (
	// inNetNSEnv marks the test process that runs in a network namespace
	// of its own, so that nothing the tests make touches the machine's.
	inNetNSEnv = "VMBOX_NETWORK_TEST_NETNS"
	// holderEnv marks a process that only holds a network namespace: a
	// container, or the world outside the VM.
	holderEnv = "VMBOX_NETWORK_TEST_HOLDER"
)

func TestMain(m *testing.M) {
	if os.Getenv(holderEnv) != "" {
		for {
			time.Sleep(time.Hour)
		}
	}
	if os.Geteuid() != 0 || os.Getenv(inNetNSEnv) != "" {
		if os.Getenv(inNetNSEnv) != "" {
			if err := setupTestNetNS(); err != nil {
				fmt.Fprintln(os.Stderr, "test network namespace:", err)
				os.Exit(1)
			}
		}
		os.Exit(m.Run())
	}
	cmd := exec.Command(os.Args[0], os.Args[1:]...)
	cmd.Env = append(os.Environ(), inNetNSEnv+"=1")
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWNET, Pdeathsig: syscall.SIGKILL}
	err := cmd.Run()
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		os.Exit(exit.ExitCode())
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "run the tests in a network namespace:", err)
		os.Exit(1)
	}
	os.Exit(0)
}

func setupTestNetNS() error {
	lo, err := netlink.LinkByName("lo")
	if err != nil {
		return err
	}
	return netlink.LinkSetUp(lo)
}

// needRoot skips tests that make kernel objects unless they run, as root,
// in the test's own network namespace.
func needRoot(t *testing.T) {
	t.Helper()
	if os.Getenv(inNetNSEnv) == "" {
		t.Skip("needs root: makes bridges, veths and nftables rules in a network namespace of its own")
	}
}

// holder is a process in a network namespace of its own.
type holder struct {
	cmd *exec.Cmd
	ns  string // its namespace's path
}

func newHolder(t *testing.T) *holder {
	t.Helper()
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), holderEnv+"=1")
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWNET, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	h := &holder{cmd: cmd, ns: fmt.Sprintf("/proc/%d/ns/net", cmd.Process.Pid)}
	t.Cleanup(h.kill)
	return h
}

// kill ends the process, and its namespace with it.
func (h *holder) kill() {
	if h.cmd.ProcessState == nil {
		_ = h.cmd.Process.Kill()
		_ = h.cmd.Wait()
	}
}

// inNS runs fn on a thread in the network namespace at path: sockets it
// opens belong to that namespace.
func inNS(t *testing.T, path string, fn func() error) error {
	t.Helper()
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			errc <- err
			return
		}
		defer orig.Close()
		target, err := netns.GetFromPath(path)
		if err != nil {
			errc <- err
			return
		}
		defer target.Close()
		if err := netns.Set(target); err != nil {
			errc <- err
			return
		}
		err = fn()
		if rerr := netns.Set(orig); rerr != nil {
			// The thread stays locked, so it ends with this goroutine
			// and no other goroutine runs in the wrong namespace.
			errc <- errors.Join(err, rerr)
			return
		}
		runtime.UnlockOSThread()
		errc <- err
	}()
	return <-errc
}

// handleIn is a netlink handle in the namespace at path.
func handleIn(t *testing.T, path string) *netlink.Handle {
	t.Helper()
	ns, err := netns.GetFromPath(path)
	if err != nil {
		t.Fatal(err)
	}
	defer ns.Close()
	h, err := netlink.NewHandleAt(ns)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(h.Close)
	return h
}

// listenIn listens on TCP addr in the namespace at path and answers each
// connection with the address it came from.
func listenIn(t *testing.T, path, addr string) net.Listener {
	t.Helper()
	var l net.Listener
	err := inNS(t, path, func() error {
		var err error
		l, err = net.Listen("tcp4", addr)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			_, _ = c.Write([]byte(c.RemoteAddr().(*net.TCPAddr).IP.String() + "\n"))
			c.Close()
		}
	}()
	return l
}

// dialFrom connects from the namespace at path to addr and returns the
// source address the other side saw.
func dialFrom(t *testing.T, path, addr string, timeout time.Duration) (netip.Addr, error) {
	t.Helper()
	var seen netip.Addr
	err := inNS(t, path, func() error {
		c, err := net.DialTimeout("tcp4", addr, timeout)
		if err != nil {
			return err
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(timeout))
		buf := make([]byte, 64)
		n, err := c.Read(buf)
		if err != nil {
			return err
		}
		seen, err = netip.ParseAddr(string(buf[:n-1]))
		return err
	})
	return seen, err
}
