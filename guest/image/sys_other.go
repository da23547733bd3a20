//go:build !linux

package image

import (
	"errors"
	"io"
	"os"
)

// errUnsupported is returned on systems other than Linux: the store unpacks
// layers for overlayfs and only ever runs inside the Linux guest.
var errUnsupported = errors.New("the image store requires Linux")

func lockRoot(string) (*os.File, error) { return nil, errUnsupported }

func syncFS(string) error { return errUnsupported }

func markTopDir(string) {}

func extractTar(string, io.Reader) error { return errUnsupported }
