//go:build !windows

package hostproc

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"syscall"
	"time"

	"github.com/vmbox/vmbox/host/instance"
)

// listenDocker listens on the instance's docker.sock, which its Close
// removes.
func listenDocker(ctx context.Context, inst *instance.Instance) (net.Listener, error) {
	return listenPrivateSocket(ctx, inst.Path(instance.DockerSocketFile))
}

// staleProbeTimeout bounds the dial that tells a stale socket from a live
// one: a live server accepts into its backlog at once.
const staleProbeTimeout = time.Second

// listenPrivateSocket listens on a Unix socket at path that only this user
// may connect to (mode 0600: the Docker API is root in the guest). A
// socket that nothing answers on is what a killed run leaves, and is
// replaced; anything else at path (a file, a socket some process serves)
// is not ours to remove, and is an error.
func listenPrivateSocket(ctx context.Context, path string) (net.Listener, error) {
	if err := removeStaleSocket(ctx, path); err != nil {
		return nil, err
	}
	var lc net.ListenConfig
	l, err := lc.Listen(ctx, "unix", path)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", path, err)
	}
	// The mode follows the umask at bind; the instance directory (0700)
	// keeps others out until the chmod.
	if err := os.Chmod(path, 0o600); err != nil {
		l.Close()
		return nil, fmt.Errorf("restrict %s to its owner: %w", path, err)
	}
	return l, nil
}

// removeStaleSocket removes the socket at path if nothing answers on it.
func removeStaleSocket(ctx context.Context, path string) error {
	fi, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("check %s: %w", path, err)
	}
	if fi.Mode().Type() != fs.ModeSocket {
		return fmt.Errorf("%s exists and is not a socket: move it away so that vmbox can serve the Docker API there", path)
	}
	d := net.Dialer{Timeout: staleProbeTimeout}
	c, err := d.DialContext(ctx, "unix", path)
	if err == nil {
		c.Close()
		return fmt.Errorf("another process serves %s: stop it so that vmbox can serve the Docker API there", path)
	}
	// Only a refusal proves the socket dead; a timeout or a permission
	// error may hide a live server.
	if !errors.Is(err, syscall.ECONNREFUSED) && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("check whether %s is in use: %w", path, err)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("remove stale socket %s: %w", path, err)
	}
	return nil
}
