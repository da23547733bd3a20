package container

import (
	"encoding/json"
	"errors"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/vmbox/vmbox/guest/container/internal/nsinit"
)

// TestEarlyInitError: a start that fails after the init has already
// reported its own failure reports the init's, not what it broke.
func TestEarlyInitError(t *testing.T) {
	pair := func() (int, int) {
		fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { unix.Close(fds[0]); unix.Close(fds[1]) })
		return fds[0], fds[1]
	}
	parent, child := pair()
	msg, _ := json.Marshal(nsinit.ErrorMsg{Code: 125, Msg: "mount /app: no such file or directory"})
	if err := nsinit.SendMsg(child, nsinit.MsgError, msg, nil); err != nil {
		t.Fatal(err)
	}
	var se *StartError
	if err := earlyInitError(parent); !errors.As(err, &se) || se.Msg != "mount /app: no such file or directory" || se.Code != 125 {
		t.Errorf("earlyInitError = %v, want the init's message", err)
	}
	quiet, _ := pair()
	if err := earlyInitError(quiet); err != nil {
		t.Errorf("an init that said nothing: %v", err)
	}
}
