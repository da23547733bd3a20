package qemu

import (
	"context"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/vmbox/vmbox/host/driver"
)

// EnvVirtiofsd names the environment variable that gives the virtiofsd
// binary, for a host whose virtiofsd is not where distributions put it.
const EnvVirtiofsd = "VMBOX_VIRTIOFSD"

// virtiofsdPaths are where distributions install virtiofsd: Debian and
// Ubuntu ship QEMU's C virtiofsd in qemu-system-common, and the Rust
// virtiofsd package installs into /usr/libexec (as Fedora does).
var virtiofsdPaths = []string{"/usr/libexec/virtiofsd", "/usr/lib/qemu/virtiofsd"}

// findVirtiofsd returns the virtiofsd to serve folders with, or why there
// is none. Only a Linux host has vhost-user back ends, and virtiofsd
// needs root there (it sandboxes itself in namespaces and switches to
// each request's user): as another user the folders are served by the
// host process alone.
func findVirtiofsd(goos string, euid int, env string, exists func(string) bool) (string, error) {
	if goos != "linux" {
		return "", fmt.Errorf("virtiofs needs vhost-user, which QEMU has only on Linux hosts")
	}
	if euid != 0 {
		return "", errors.New("virtiofsd needs root")
	}
	if env != "" {
		if !exists(env) {
			return "", fmt.Errorf("%s=%s: no such file", EnvVirtiofsd, env)
		}
		return env, nil
	}
	for _, p := range virtiofsdPaths {
		if exists(p) {
			return p, nil
		}
	}
	return "", fmt.Errorf("no virtiofsd (looked in %v; Debian's is in qemu-system-common)", virtiofsdPaths)
}

func fileExists(p string) bool {
	st, err := os.Stat(p)
	return err == nil && !st.IsDir()
}

// virtiofsdArgs are one folder's virtiofsd arguments, in the -o form that
// both the C and the Rust virtiofsd accept. cache=none: the guest caches
// the folder's pages in its own mount over this one, so the virtiofs
// mount itself keeps neither pages nor names, and sees each host change
// at once.
func virtiofsdArgs(socket string, f driver.Folder) []string {
	return []string{"--socket-path=" + socket, "-o", "source=" + f.HostPath, "-o", "cache=none"}
}

// virtiofsdServes says whether a virtiofsd is to serve f. Not a read-only
// folder: QEMU's virtiofsd has no read-only mode and runs as root, so
// only the guest's own mount flags would keep the folder unwritten, and
// a privileged container could mount the device again; over SFTP the
// host refuses the writes. Not a path with a comma, which virtiofsd's
// -o options would split.
func virtiofsdServes(f driver.Folder) bool {
	return !f.ReadOnly && !strings.Contains(f.HostPath, ",")
}

// folderSocket is the name, in the instance directory dir, of the i-th
// folder's socket. It is unique to dir: QEMU's virtiofsd locks a pid file
// named after the socket path as it is given, in one directory for the
// whole host (/var/run/virtiofsd), so the same relative name in two
// instances would keep the second from starting. The path is relative
// (virtiofsd and QEMU run in dir) to stay within the socket path limit.
func folderSocket(dir string, i int) string {
	return fmt.Sprintf("virtiofs-%08x-%d.sock", crc32.ChecksumIEEE([]byte(dir)), i)
}

// virtiofsdPidDir is where QEMU's virtiofsd, as Debian builds it, keeps a
// locked pid file per socket.
const virtiofsdPidDir = "/var/run/virtiofsd"

// socketWait bounds how long virtiofsd may take to listen.
const socketWait = 5 * time.Second

// startFolders starts a virtiofsd for each folder, in dir, and returns the
// devices QEMU is to connect to them and a function that kills them. A
// folder whose virtiofsd fails is left out (logged in its log file): it
// is still served over the agent's channel.
func startFolders(ctx context.Context, bin, dir string, folders []driver.Folder) ([]FolderDevice, func()) {
	type started struct {
		cmd      *exec.Cmd
		exited   chan struct{}
		sockPath string
		dev      FolderDevice
	}
	// All start before any is waited for: each takes a while to make its
	// socket, and QEMU waits for the slowest.
	var all []started
	for i, f := range folders {
		if !virtiofsdServes(f) {
			continue
		}
		socket := folderSocket(dir, i)
		sockPath := filepath.Join(dir, socket)
		os.Remove(sockPath) // a killed predecessor's
		logf, err := os.OpenFile(filepath.Join(dir, "virtiofs-"+strconv.Itoa(i)+".log"), os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
		if err != nil {
			continue
		}
		cmd := exec.Command(bin, virtiofsdArgs(socket, f)...)
		cmd.Dir = dir
		cmd.Stdout, cmd.Stderr = logf, logf
		exited := make(chan struct{})
		err = startProcess(cmd, func(error) {
			// QEMU's virtiofsd leaves its pid file behind, and with a
			// name per instance directory they would pile up.
			os.Remove(filepath.Join(virtiofsdPidDir, socket+".pid"))
			close(exited)
		})
		logf.Close()
		if err != nil {
			continue
		}
		all = append(all, started{cmd: cmd, exited: exited, sockPath: sockPath, dev: FolderDevice{Tag: f.Tag, Socket: socket}})
	}
	var devs []FolderDevice
	var procs []*exec.Cmd
	for _, s := range all {
		if err := waitSocket(ctx, s.sockPath, s.exited); err != nil {
			s.cmd.Process.Kill()
			continue
		}
		procs = append(procs, s.cmd)
		devs = append(devs, s.dev)
	}
	return devs, func() {
		for _, p := range procs {
			p.Process.Kill()
		}
	}
}

// waitSocket waits for virtiofsd to make its socket.
func waitSocket(ctx context.Context, path string, exited <-chan struct{}) error {
	ctx, cancel := context.WithTimeout(ctx, socketWait)
	defer cancel()
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for {
		if _, err := os.Stat(path); err == nil {
			return nil
		}
		select {
		case <-exited:
			return errors.New("virtiofsd exited")
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
	}
}

// virtiofsd returns the binary that serves folders on this host.
func hostVirtiofsd() (string, error) {
	return findVirtiofsd(runtime.GOOS, os.Geteuid(), os.Getenv(EnvVirtiofsd), fileExists)
}
