// Package image owns the engine's image store: content-addressed blobs,
// manifests and configs, the tag index, unpacked layers shared read-only
// between containers, and the ways images arrive and leave (pull from a
// registry, load and save of archives).
//
// The store unpacks layers as root on Linux, keeping ownership, device
// nodes and overlayfs' whiteout xattrs, and resolves paths inside a layer
// with openat2/procfs (filepath-securejoin's pathrs-lite), so /proc must be
// mounted. Open it once per process; every method is safe for concurrent
// use.
package image

import (
	"errors"
	"time"

	"github.com/vmbox/vmbox/guest/api"
)

// ErrNotFound is returned (wrapped) when no image matches a reference.
var ErrNotFound = errors.New("no such image")

// ErrConflict is returned (wrapped) when an image cannot be removed
// without force: a container uses it, or it has names in several
// repositories.
var ErrConflict = errors.New("conflict")

// Image is a stored image, unpacked and ready to be a container's root filesystem.
type Image struct {
	ID       string // "sha256:<config digest>"
	RepoTags []string
	Config   api.ImageConfig
	// Layers are the unpacked layer directories, lowest first. They are shared
	// between containers and must never be written to. Each is meant to be
	// an overlayfs lowerdir as is: whiteouts and opaque directories are
	// already in overlayfs' form. A layer the image has more than once is
	// listed once, at its topmost place (overlayfs refuses duplicates).
	Layers  []string
	Created time.Time
	Size    int64 // unpacked bytes

	// RepoDigests are "name@sha256:..." references from registry pulls.
	RepoDigests  []string
	OS           string
	Architecture string
}
