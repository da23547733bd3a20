package image

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
)

// dockerHub is how references to Docker Hub are stored and shown, whatever
// spelling (index.docker.io, registry-1.docker.io, none) the user typed.
const dockerHub = "docker.io"

// imageRef is a parsed image reference in the store's canonical spelling.
type imageRef struct {
	ref    name.Reference
	repo   string // "docker.io/library/busybox"
	tag    string // "latest"; empty for a digest reference
	digest string // "sha256:..."; empty for a tag reference
}

// canonical is the reference as stored in the tag index or RepoDigests.
func (r imageRef) canonical() string {
	if r.digest != "" {
		return r.repo + "@" + r.digest
	}
	return r.repo + ":" + r.tag
}

// parseRef parses a Docker-style reference; "busybox" means
// docker.io/library/busybox:latest.
func parseRef(s string, opts ...name.Option) (imageRef, error) {
	if s == "" {
		return imageRef{}, fmt.Errorf("invalid reference format: empty image name")
	}
	ref, err := name.ParseReference(s, opts...)
	if err != nil {
		return imageRef{}, fmt.Errorf("invalid reference format: %s", oneLine(err.Error()))
	}
	r := imageRef{ref: ref, repo: canonicalRepo(ref.Context())}
	switch v := ref.(type) {
	case name.Tag:
		r.tag = v.TagStr()
	case name.Digest:
		r.digest = v.DigestStr()
		if _, err := digestHex(r.digest); err != nil {
			return imageRef{}, fmt.Errorf("invalid reference format: %w", err)
		}
	}
	return r, nil
}

// canonicalRepo spells a repository the way the store records it.
func canonicalRepo(r name.Repository) string {
	reg := r.RegistryStr()
	if reg == name.DefaultRegistry || reg == "registry-1.docker.io" {
		reg = dockerHub
	}
	return reg + "/" + r.RepositoryStr()
}

// familiar turns a canonical reference into the short form Docker shows:
// docker.io/library/busybox:latest -> busybox:latest.
func familiar(canonical string) string {
	s, ok := strings.CutPrefix(canonical, dockerHub+"/")
	if !ok {
		return canonical
	}
	return strings.TrimPrefix(s, "library/")
}

// repoOf returns the repository part of a canonical "repo:tag" or
// "repo@digest" reference.
func repoOf(canonical string) string {
	if i := strings.LastIndexByte(canonical, '@'); i >= 0 {
		return canonical[:i]
	}
	if i := strings.LastIndexByte(canonical, ':'); i > strings.LastIndexByte(canonical, '/') {
		return canonical[:i]
	}
	return canonical
}

// digestHex validates a "sha256:<64 hex>" digest and returns its hex part.
// Every digest that reaches a file name passes through here, so a hostile
// manifest cannot name a path outside the blob directory.
func digestHex(d string) (string, error) {
	h, ok := strings.CutPrefix(d, "sha256:")
	if !ok || len(h) != 64 || !isLowerHex(h) {
		return "", fmt.Errorf("invalid digest %q", truncate(d, 80))
	}
	return h, nil
}

func isLowerHex(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// shortID is the 12-character ID Docker prints.
func shortID(id string) string {
	h := strings.TrimPrefix(id, "sha256:")
	if len(h) > 12 {
		return h[:12]
	}
	return h
}

func sha256Sum(b []byte) []byte {
	sum := sha256.Sum256(b)
	return sum[:]
}

func sha256Digest(sum []byte) string {
	return "sha256:" + hex.EncodeToString(sum)
}

// truncate keeps user-supplied strings in error messages short.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}

// oneLine keeps errors from libraries to the one line the CLI prints.
func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}
