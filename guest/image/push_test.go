package image_test

import (
	"bytes"
	"context"
	"errors"
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
	got, err := s.Push(ctx, addr+"/other/busybox:v2", image.PullOptions{}, log.add)
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
