package image_test

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/vmbox/vmbox/guest/image"
	"github.com/vmbox/vmbox/guest/image/imagetest"
)

// TestPush pushes a pulled and a loaded image, under new names, and pulls
// them back into a fresh store: same digests, the same image.
func TestPush(t *testing.T) {
	addr := imagetest.StartRegistry(t)
	digest := imagetest.Push(t, imagetest.BusyboxImage(t), addr+"/busybox:latest")
	ctx := context.Background()
	s := openStore(t)
	if _, err := s.Pull(ctx, addr+"/busybox", image.PullOptions{}, nil); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	imagetest.WriteDockerArchive(t, &buf, map[string]v1.Image{"hello:loaded": imagetest.HelloImage(t)})
	if _, err := s.Load(&buf); err != nil {
		t.Fatal(err)
	}
	if err := s.Tag(addr+"/busybox", addr+"/other/busybox:v2"); err != nil {
		t.Fatal(err)
	}
	if err := s.Tag("hello:loaded", addr+"/hello:pushed"); err != nil {
		t.Fatal(err)
	}

	var log progressLog
	var requests recordingTransport
	got, err := s.Push(ctx, addr+"/other/busybox:v2", image.PullOptions{Transport: &requests}, log.add)
	if err != nil {
		t.Fatal(err)
	}
	if got != digest {
		t.Errorf("pushed digest %s, want the pulled %s", got, digest)
	}
	for _, want := range []string{"The push refers to repository [" + addr + "/other/busybox]", "Preparing", "Pushed", "v2: digest: " + digest} {
		if !log.has(want) {
			t.Errorf("progress lacks %q: %q", want, log.statuses())
		}
	}
	// The layer came from addr/busybox: the registry mounts it into the
	// new repository rather than receiving it again; only the small
	// config blob is uploaded.
	if mounts, uploads := requests.count("mount=", "from=busybox"), requests.count("PUT", "/blobs/uploads/"); mounts != 1 || uploads != 1 {
		t.Errorf("push to another repository: %d cross-repository mounts, %d blob uploads; want 1 and 1 (the config):\n%s", mounts, uploads, strings.Join(requests.lines(), "\n"))
	}
	loadedDigest, err := s.Push(ctx, addr+"/hello:pushed", image.PullOptions{}, nil)
	if err != nil {
		t.Fatal(err)
	}

	fresh := openStore(t)
	for ref, want := range map[string]string{addr + "/other/busybox:v2": digest, addr + "/hello:pushed": loadedDigest} {
		img, err := fresh.Pull(ctx, ref, image.PullOptions{}, nil)
		if err != nil {
			t.Fatalf("pull back %s: %v", ref, err)
		}
		orig, _ := s.Get(ref)
		if img.ID != orig.ID || len(img.RepoDigests) != 1 || img.RepoDigests[0] != refRepo(ref)+"@"+want {
			t.Errorf("pulled back %s: id %s digests %v; want id %s digest %s", ref, img.ID, img.RepoDigests, orig.ID, want)
		}
	}
	if _, err := s.Push(ctx, addr+"/nosuch:1", image.PullOptions{}, nil); !errors.Is(err, image.ErrNotFound) {
		t.Errorf("push of a missing image: %v", err)
	}
}

func refRepo(ref string) string {
	for i := len(ref) - 1; i >= 0; i-- {
		if ref[i] == ':' {
			return ref[:i]
		}
	}
	return ref
}

// recordingTransport records the requests it carries ("METHOD URL").
type recordingTransport struct {
	mu   sync.Mutex
	reqs []string
}

func (r *recordingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	r.mu.Lock()
	r.reqs = append(r.reqs, req.Method+" "+req.URL.String())
	r.mu.Unlock()
	return http.DefaultTransport.RoundTrip(req)
}

func (r *recordingTransport) lines() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.reqs)
}

// count is how many requests contain every one of parts.
func (r *recordingTransport) count(parts ...string) int {
	n := 0
	for _, l := range r.lines() {
		all := true
		for _, p := range parts {
			all = all && strings.Contains(l, p)
		}
		if all {
			n++
		}
	}
	return n
}
