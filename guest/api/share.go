package api

import (
	"errors"
	"fmt"
	"path"
	"strings"
	"syscall"
)

// Share is a host folder that the instance's host process serves into the
// VM. The host process opens one sshproto.ChanShare channel per share,
// with a JSON Share as its extra data, and serves SFTP version 3 on it
// (the host is the SFTP server, the agent the client); the agent mounts
// the folder at GuestPath with FUSE for as long as the channel is open.
// SFTP paths on the channel are absolute within the share: "/" is
// HostPath itself.
type Share struct {
	HostPath  string `json:"hostPath"`  // as the host names it
	GuestPath string `json:"guestPath"` // where the VM sees it: the same path on Unix hosts
	ReadOnly  bool   `json:"readOnly,omitempty"`
	// Tag, when set, names a virtiofs device that the hypervisor serves
	// the same folder on. The agent then reads and writes file contents
	// through it, which is many times faster than SFTP over the agent's
	// channel; names, attributes, creation and the host's changes still go
	// over the channel, whose server is the host user and which watches
	// what the guest uses.
	Tag string `json:"tag,omitempty"`
}

// ShareEvent is a change the host saw under a share, which the agent
// replays through its mount so that inotify watchers in the VM and in
// containers see it. Path is the changed entry's SFTP path within the
// share ("/src/main.go").
type ShareEvent struct {
	GuestPath string `json:"share"` // the share's GuestPath
	Path      string `json:"path"`
	Op        string `json:"op"` // one of the ShareOp constants
}

// The changes a ShareEvent names.
const (
	ShareCreate = "create"
	ShareWrite  = "write"
	ShareRemove = "remove"
	ShareChmod  = "chmod"
)

// SFTP version 3 has five failure codes, too few for a file system: the
// host's SFTP server starts each failure's message with the POSIX name of
// its errno and ": ", and the agent turns the name back into the errno
// that the FUSE request returns.
var shareErrnos = []struct {
	name  string
	errno syscall.Errno
}{
	{"ENOENT", syscall.ENOENT}, {"EEXIST", syscall.EEXIST}, {"ENOTEMPTY", syscall.ENOTEMPTY},
	{"ENOTDIR", syscall.ENOTDIR}, {"EISDIR", syscall.EISDIR}, {"EACCES", syscall.EACCES},
	{"EPERM", syscall.EPERM}, {"EROFS", syscall.EROFS}, {"ENOSPC", syscall.ENOSPC},
	{"EINVAL", syscall.EINVAL}, {"EXDEV", syscall.EXDEV}, {"ELOOP", syscall.ELOOP},
	{"ENAMETOOLONG", syscall.ENAMETOOLONG}, {"EBUSY", syscall.EBUSY}, {"EMLINK", syscall.EMLINK},
	{"EFBIG", syscall.EFBIG}, {"EDQUOT", syscall.EDQUOT}, {"ENOSYS", syscall.ENOSYS},
}

// ShareErrorMessage is the message of an SFTP failure for err: its errno's
// name, ": " and err's text. An error the table does not name is EIO.
func ShareErrorMessage(err error) string {
	for _, e := range shareErrnos {
		if errors.Is(err, e.errno) {
			return e.name + ": " + err.Error()
		}
	}
	return "EIO: " + err.Error()
}

// ShareErrno is the errno a message made by ShareErrorMessage names, and
// false for a message that names none.
func ShareErrno(msg string) (syscall.Errno, bool) {
	name, _, ok := strings.Cut(msg, ": ")
	if !ok {
		return 0, false
	}
	if name == "EIO" {
		return syscall.EIO, true
	}
	for _, e := range shareErrnos {
		if e.name == name {
			return e.errno, true
		}
	}
	return 0, false
}

// ShareEscapeError says a path leads out of its share (through "..", or a
// symlink the host would follow): the host refuses it as EACCES.
func ShareEscapeError(op, path string) error {
	return fmt.Errorf("%s %s: outside the share: %w", op, path, syscall.EACCES)
}

// vmSystemPaths are the VM's own directories: a share may be mounted
// neither on nor above one (it would hide the system), nor in one of
// those marked inside (kernel file systems, the runtime state and the
// data disk).
var vmSystemPaths = []struct {
	path   string
	inside bool // no share below it either
}{
	{"/bin", false}, {"/boot", false}, {"/etc", false}, {"/lib", false}, {"/lib64", false},
	{"/sbin", false}, {"/usr", false}, {"/usr/bin", false}, {"/usr/lib", false}, {"/usr/sbin", false},
	{"/var/run", false}, {"/var/lib", false},
	{"/dev", true}, {"/proc", true}, {"/sys", true}, {"/run", true}, {"/var/lib/vmbox", true},
}

// CheckShareGuestPath says why a share cannot be mounted at p in the VM,
// or nil when it can.
func CheckShareGuestPath(p string) error {
	if !path.IsAbs(p) || path.Clean(p) != p {
		return fmt.Errorf("share path %q: must be absolute and clean", p)
	}
	if p == "/" {
		return errors.New("share path /: the VM's root cannot be shared over")
	}
	for _, s := range vmSystemPaths {
		if p == s.path || strings.HasPrefix(s.path, p+"/") || (s.inside && strings.HasPrefix(p, s.path+"/")) {
			return fmt.Errorf("share path %s: it would hide the VM's %s", p, s.path)
		}
	}
	return nil
}

// ShareCovers says whether the VM path p is in the share mounted at
// guestPath.
func ShareCovers(guestPath, p string) bool {
	p = path.Clean(p)
	return p == guestPath || strings.HasPrefix(p, strings.TrimSuffix(guestPath, "/")+"/")
}

// WindowsPathInVM is where the VM sees the Windows path p (C:\Users\me
// is /mnt/c/Users/me), and false when p is not a drive path.
func WindowsPathInVM(p string) (string, bool) {
	if len(p) < 2 || p[1] != ':' || !(p[0] >= 'a' && p[0] <= 'z' || p[0] >= 'A' && p[0] <= 'Z') {
		return "", false
	}
	if len(p) > 2 && p[2] != '\\' && p[2] != '/' {
		return "", false
	}
	return path.Clean("/mnt/" + strings.ToLower(p[:1]) + "/" + strings.ReplaceAll(p[2:], `\`, "/")), true
}

// WindowsVolumeSpec rewrites a -v value (a Docker bind) whose source is a
// Windows drive path, C:\src:/app:ro, whose colon would read as a
// separator, with the source as the VM sees it.
func WindowsVolumeSpec(spec string) string {
	src, rest := spec, ""
	if len(spec) > 2 {
		if i := strings.Index(spec[2:], ":"); i >= 0 {
			src, rest = spec[:i+2], spec[i+2:]
		}
	}
	if p, ok := WindowsPathInVM(src); ok {
		return p + rest
	}
	return spec
}
