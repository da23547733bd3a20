package hostproc

import (
	"context"
	"fmt"
	"net"

	"github.com/Microsoft/go-winio"
	"golang.org/x/sys/windows"

	"github.com/vmbox/vmbox/host/instance"
)

// listenDocker listens on the instance's named pipe (instance.DockerPipe),
// where the docker CLI on Windows expects an engine. A pipe vanishes with
// the process that made it, so no run leaves a stale one behind; a pipe
// that exists belongs to a live process, and is an error.
func listenDocker(_ context.Context, inst *instance.Instance) (net.Listener, error) {
	sddl, err := ownerOnlySDDL()
	if err != nil {
		return nil, err
	}
	pipe := inst.DockerPipe()
	l, err := winio.ListenPipe(pipe, &winio.PipeConfig{
		SecurityDescriptor: sddl,
		// Message mode is what gives CloseWrite a meaning on a pipe
		// (a zero-byte message the reader sees as EOF): the half-close
		// of attach and exec. dockerd's own pipe is configured so.
		MessageMode:      true,
		InputBufferSize:  65536,
		OutputBufferSize: 65536,
	})
	if err != nil {
		return nil, fmt.Errorf("listen on %s (does an instance named %q run from another VMBOX_HOME?): %w", pipe, inst.Config.Name, err)
	}
	return l, nil
}

// ownerOnlySDDL grants the pipe to this user alone, as mode 0600 does the
// socket elsewhere: the default pipe ACL lets everyone read, and the
// Docker API is root in the guest.
func ownerOnlySDDL() (string, error) {
	u, err := windows.GetCurrentProcessToken().GetTokenUser()
	if err != nil {
		return "", fmt.Errorf("find the current user for the Docker API pipe: %w", err)
	}
	return "D:P(A;;GA;;;" + u.User.Sid.String() + ")", nil
}
