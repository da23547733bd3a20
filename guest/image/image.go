// Package image owns the engine's image store: content-addressed blobs,
// manifests and configs, the tag index, unpacked layers shared read-only
// between containers, and the ways images arrive and leave (pull from a
// registry, load and save of archives).
package image

import (
	"errors"
	"time"

	"github.com/vmbox/vmbox/guest/api"
)

// ErrNotFound is returned (wrapped) when no image matches a reference.
var ErrNotFound = errors.New("no such image")

// Image is a stored image, unpacked and ready to be a container's root filesystem.
type Image struct {
	ID       string // "sha256:<config digest>"
	RepoTags []string
	Config   api.ImageConfig
	// Layers are the unpacked layer directories, lowest first. They are shared
	// between containers and must never be written to.
	Layers  []string
	Created time.Time
	Size    int64 // unpacked bytes

	// RepoDigests are "name@sha256:..." references from registry pulls.
	RepoDigests  []string
	OS           string
	Architecture string
}
