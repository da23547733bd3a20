package nsinit

import (
	"errors"
	"fmt"
	"io"

	"golang.org/x/sys/unix"
)

// The parent and a helper init talk over a SOCK_SEQPACKET socket pair, one
// message per sendmsg, descriptors as SCM_RIGHTS:
//
//	parent -> init: 'c' + JSON Config, with the stdio descriptors
//	parent -> init: 'g' once the init is in its cgroup ("go")
//	init -> parent: 't' with the terminal's master descriptor (Tty only)
//	init -> parent: 'e' + JSON ErrorMsg, then the init exits
//
// The init's end is close-on-exec: end of file without an 'e' means execve
// succeeded.
const (
	MsgConfig = 'c'
	MsgGo     = 'g'
	MsgTty    = 't'
	MsgError  = 'e'
)

// Config is everything the init needs besides its namespaces.
type Config struct {
	Dir        string   `json:"dir"`
	Layers     []string `json:"layers"`
	Args       []string `json:"args"`
	Env        []string `json:"env"`
	User       string   `json:"user,omitempty"`
	WorkingDir string   `json:"cwd,omitempty"`
	Hostname   string   `json:"hostname,omitempty"`
	Tty        bool     `json:"tty,omitempty"`
	Rows       uint16   `json:"rows,omitempty"`
	Cols       uint16   `json:"cols,omitempty"`
	Privileged bool     `json:"privileged,omitempty"`
	ReadOnly   bool     `json:"readonly,omitempty"`
	// Trace asks the init to report the time spent in each step on stderr.
	Trace bool `json:"trace,omitempty"`
	// Mounts are made into the root filesystem before the pivot: bind
	// mounts (their sources are paths of the VM) and tmpfs.
	Mounts []Mount `json:"mounts,omitempty"`
	// JoinNetNS says the last descriptor sent with the configuration is a
	// network namespace the init enters (another container's).
	JoinNetNS bool `json:"joinNetns,omitempty"`
}

// Mount is one mount into a container: a bind mount of Source, or with
// Type "tmpfs" a new tmpfs with Options (Docker's --tmpfs options, checked
// by TmpfsOptions).
type Mount struct {
	Source   string `json:"source,omitempty"`
	Target   string `json:"target"` // absolute, inside the container
	ReadOnly bool   `json:"ro,omitempty"`
	Type     string `json:"type,omitempty"`
	Options  string `json:"options,omitempty"`
}

// MountTmpfs is Mount.Type for a tmpfs.
const MountTmpfs = "tmpfs"

// ErrorMsg is the init's report of a failure before execve.
type ErrorMsg struct {
	Code int    `json:"code"`
	Msg  string `json:"msg"`
}

func SendMsg(fd int, kind byte, payload []byte, fds []int) error {
	buf := make([]byte, 1+len(payload))
	buf[0] = kind
	copy(buf[1:], payload)
	var oob []byte
	if len(fds) > 0 {
		oob = unix.UnixRights(fds...)
	}
	for {
		err := unix.Sendmsg(fd, buf, oob, nil, 0)
		if err == unix.EINTR {
			continue
		}
		return err
	}
}

// RecvMsg reads one message. It returns io.EOF when the peer has closed its
// end. Received descriptors are close-on-exec.
func RecvMsg(fd int) (kind byte, payload []byte, fds []int, err error) {
	// Peek at the size first: configurations can be large (environments).
	var n int
	for {
		n, _, err = unix.Recvfrom(fd, nil, unix.MSG_PEEK|unix.MSG_TRUNC)
		if err != unix.EINTR {
			break
		}
	}
	if err != nil {
		return 0, nil, nil, err
	}
	if n == 0 {
		return 0, nil, nil, io.EOF
	}
	buf := make([]byte, n)
	oob := make([]byte, unix.CmsgSpace(4*4))
	var oobn, flags int
	for {
		n, oobn, flags, _, err = unix.Recvmsg(fd, buf, oob, unix.MSG_CMSG_CLOEXEC)
		if err != unix.EINTR {
			break
		}
	}
	if err != nil {
		return 0, nil, nil, err
	}
	if flags&(unix.MSG_TRUNC|unix.MSG_CTRUNC) != 0 {
		return 0, nil, nil, errors.New("message truncated")
	}
	if oobn > 0 {
		msgs, err := unix.ParseSocketControlMessage(oob[:oobn])
		if err != nil {
			return 0, nil, nil, fmt.Errorf("parse control message: %w", err)
		}
		for _, m := range msgs {
			r, err := unix.ParseUnixRights(&m)
			if err != nil {
				continue
			}
			fds = append(fds, r...)
		}
	}
	if n == 0 {
		return 0, nil, fds, io.EOF
	}
	return buf[0], buf[1:n], fds, nil
}
