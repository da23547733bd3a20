package image_test

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-containerregistry/pkg/compression"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/vmbox/vmbox/guest/api"
	"github.com/vmbox/vmbox/guest/image"
	"github.com/vmbox/vmbox/guest/image/imagetest"
)

func openStore(t *testing.T) *image.Store {
	t.Helper()
	s, err := image.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// progressLog records a pull's progress messages.
type progressLog struct {
	mu   sync.Mutex
	msgs []api.PullProgress
}

func (p *progressLog) add(m api.PullProgress) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.msgs = append(p.msgs, m)
}

func (p *progressLog) statuses() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []string
	for _, m := range p.msgs {
		out = append(out, m.Status)
	}
	return out
}

func (p *progressLog) has(prefix string) bool {
	return slices.ContainsFunc(p.statuses(), func(s string) bool { return strings.HasPrefix(s, prefix) })
}

// state describes what a user can see of a store: List, and Get of refs.
func state(t *testing.T, s *image.Store, refs ...string) string {
	t.Helper()
	list, err := s.List()
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	json.NewEncoder(&b).Encode(list)
	for _, r := range refs {
		img, err := s.Get(r)
		if err != nil {
			fmt.Fprintf(&b, "%s: %v\n", r, err)
			continue
		}
		json.NewEncoder(&b).Encode(img)
		for _, l := range img.Layers {
			if _, err := os.Stat(l); err != nil {
				t.Errorf("image %s: layer %s: %v", r, l, err)
			}
		}
	}
	return b.String()
}

func oneLine(t *testing.T, err error) {
	t.Helper()
	if err != nil && strings.Contains(err.Error(), "\n") {
		t.Errorf("error is not one line: %q", err)
	}
}

func TestPull(t *testing.T) {
	addr := imagetest.StartRegistry(t)
	digest := imagetest.Push(t, imagetest.BusyboxImage(t), addr+"/busybox:latest")
	ref := addr + "/busybox:latest"
	s := openStore(t)
	ctx := context.Background()

	var first progressLog
	img, err := s.Pull(ctx, addr+"/busybox", image.PullOptions{}, first.add)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"Pulling from busybox", "Pulling fs layer", "Downloading", "Download complete", "Extracting", "Pull complete", "Digest: " + digest, "Status: Downloaded newer image for " + ref} {
		if !first.has(want) {
			t.Errorf("progress lacks %q: %q", want, first.statuses())
		}
	}
	for _, m := range first.msgs {
		if m.Status == "Downloading" && (m.ProgressDetail == nil || m.ProgressDetail.Total <= 0 || m.ProgressDetail.Current > m.ProgressDetail.Total) {
			t.Errorf("bad download progress %+v", m.ProgressDetail)
		}
	}
	if !slices.Equal(img.RepoTags, []string{ref}) || img.Config.Cmd[2] != "echo "+imagetest.BusyboxOutput || len(img.Layers) != 1 {
		t.Errorf("pulled image %+v", img)
	}
	if img.OS != "linux" || img.Architecture != runtime.GOARCH || img.Size <= 0 {
		t.Errorf("pulled image platform %s/%s size %d", img.OS, img.Architecture, img.Size)
	}
	// The unpacked layer is a usable root filesystem.
	fsRoot := img.Layers[0]
	if l, err := os.Readlink(filepath.Join(fsRoot, "bin/sh")); err != nil || l != "busybox" {
		t.Errorf("bin/sh -> %q, %v", l, err)
	}
	if out, err := exec.Command(filepath.Join(fsRoot, "bin/busybox"), "echo", "ok").Output(); err != nil || string(out) != "ok\n" {
		t.Errorf("busybox from the layer: %q, %v", out, err)
	}

	for _, r := range []string{ref, addr + "/busybox", img.ID, strings.TrimPrefix(img.ID, "sha256:"), img.ID[7:19], addr + "/busybox@" + digest} {
		got, err := s.Get(r)
		if err != nil {
			t.Errorf("Get(%q): %v", r, err)
			continue
		}
		if got.ID != img.ID {
			t.Errorf("Get(%q) = %s, want %s", r, got.ID, img.ID)
		}
	}
	if _, err := s.Get("busybox"); !errors.Is(err, image.ErrNotFound) {
		t.Errorf("Get(busybox) = %v, want ErrNotFound", err)
	}
	list, err := s.List()
	if err != nil || len(list) != 1 || list[0].ID != img.ID || !slices.Equal(list[0].RepoDigests, []string{addr + "/busybox@" + digest}) {
		t.Errorf("List = %+v, %v", list, err)
	}
	ii, err := s.Inspect(ref)
	if err != nil || ii.ID != img.ID || len(ii.RootFS.Layers) != 1 || ii.Os != "linux" || ii.Config.Env[0] != imagetest.DefaultPath {
		t.Errorf("Inspect = %+v, %v", ii, err)
	}

	// Again: nothing is downloaded.
	var again progressLog
	img2, err := s.Pull(ctx, ref, image.PullOptions{}, again.add)
	if err != nil {
		t.Fatal(err)
	}
	if img2.ID != img.ID || again.has("Downloading") || !again.has("Already exists") || !again.has("Status: Image is up to date for "+ref) {
		t.Errorf("second pull: %s %q", img2.ID, again.statuses())
	}

	// By digest, from a store that does not have it yet.
	s2 := openStore(t)
	byDigest := addr + "/busybox@" + digest
	img3, err := s2.Pull(ctx, byDigest, image.PullOptions{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if img3.ID != img.ID || len(img3.RepoTags) != 0 || !slices.Equal(img3.RepoDigests, []string{byDigest}) {
		t.Errorf("pull by digest: %+v", img3)
	}
	if _, err := s2.Get(byDigest); err != nil {
		t.Error(err)
	}
}

func TestPullLayerFormats(t *testing.T) {
	addr := imagetest.StartRegistry(t)
	tarBytes := imagetest.TarBytes(t, []imagetest.Entry{{Name: "etc/", Type: tar.TypeDir}, {Name: "etc/os-release", Body: []byte("ID=test\n")}})
	zstdLayer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(tarBytes)), nil }, tarball.WithCompression(compression.ZStd))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		layer v1.Layer
	}{
		{"gzip", imagetest.Layer(t, []imagetest.Entry{{Name: "etc/os-release", Body: []byte("ID=test\n")}})},
		{"zstd", zstdLayer},
		{"uncompressed", static.NewLayer(tarBytes, types.OCIUncompressedLayer)},
	}
	s := openStore(t)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			img := imagetest.NewImage(t, v1.Config{Cmd: []string{"x"}}, tc.layer)
			imagetest.Push(t, img, addr+"/formats:"+tc.name)
			got, err := s.Pull(context.Background(), addr+"/formats:"+tc.name, image.PullOptions{}, nil)
			if err != nil {
				t.Fatal(err)
			}
			b, err := os.ReadFile(filepath.Join(got.Layers[0], "etc/os-release"))
			if err != nil || string(b) != "ID=test\n" {
				t.Errorf("os-release = %q, %v", b, err)
			}
		})
	}
}

func TestPullMultiArch(t *testing.T) {
	addr := imagetest.StartRegistry(t)
	other := "arm64"
	if runtime.GOARCH == "arm64" {
		other = "amd64"
	}
	idx := imagetest.Index(t, map[string]v1.Image{
		"linux/" + runtime.GOARCH: imagetest.BusyboxImage(t),
		"linux/" + other:          imagetest.NewImage(t, v1.Config{Cmd: []string{"other"}}, imagetest.Layer(t, []imagetest.Entry{{Name: "marker", Body: []byte(other)}})),
	})
	idxDigest := imagetest.PushIndex(t, idx, addr+"/multi:latest")
	s := openStore(t)
	ctx := context.Background()

	var log progressLog
	native, err := s.Pull(ctx, addr+"/multi", image.PullOptions{}, log.add)
	if err != nil {
		t.Fatal(err)
	}
	if native.Architecture != runtime.GOARCH || native.Config.Cmd[0] != "sh" {
		t.Errorf("default platform pulled %s %v", native.Architecture, native.Config.Cmd)
	}
	if !log.has("Digest: " + idxDigest) {
		t.Errorf("progress does not report the index digest %s: %q", idxDigest, log.statuses())
	}
	foreign, err := s.Pull(ctx, addr+"/multi:latest", image.PullOptions{Platform: "linux/" + other}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if foreign.Architecture != other || foreign.ID == native.ID {
		t.Errorf("linux/%s pulled %s %s", other, foreign.Architecture, foreign.ID)
	}
	if b, err := os.ReadFile(filepath.Join(foreign.Layers[0], "marker")); err != nil || string(b) != other {
		t.Errorf("marker = %q, %v", b, err)
	}
	// The tag moved to the foreign image; the native one is now dangling.
	if got, err := s.Get(addr + "/multi"); err != nil || got.ID != foreign.ID {
		t.Errorf("tag points at %v, %v", got, err)
	}
	if got, err := s.Get(native.ID); err != nil || len(got.RepoTags) != 0 {
		t.Errorf("previous image: %+v, %v", got, err)
	}
	if _, err := s.Pull(ctx, addr+"/multi:latest", image.PullOptions{Platform: "linux/s390x"}, nil); err == nil {
		t.Error("pulled a platform the index does not have")
	}
}

func TestPullAuth(t *testing.T) {
	reg := imagetest.NewRegistry(t, imagetest.RegistryOptions{User: "alice", Password: "s3cret"})
	reg.Push(t, imagetest.BusyboxImage(t), "private:latest")
	ref := reg.Addr + "/private:latest"
	ctx := context.Background()
	s := openStore(t)

	_, err := s.Pull(ctx, ref, image.PullOptions{}, nil)
	if err == nil {
		t.Fatal("anonymous pull from a registry with auth succeeded")
	}
	oneLine(t, err)
	_, err = s.Pull(ctx, ref, image.PullOptions{Auth: &api.RegistryAuth{Username: "alice", Password: "wrong"}}, nil)
	if err == nil {
		t.Fatal("pull with a wrong password succeeded")
	}
	if _, err := s.Pull(ctx, ref, image.PullOptions{Auth: &api.RegistryAuth{Username: "alice", Password: "s3cret"}}, nil); err != nil {
		t.Fatalf("pull with credentials: %v", err)
	}
	cfg := filepath.Join(t.TempDir(), "config.json")
	// "auth" is base64("alice:s3cret").
	if err := os.WriteFile(cfg, []byte(`{"auths":{"http://`+reg.Addr+`":{"auth":"YWxpY2U6czNjcmV0"}}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	s2 := openStore(t)
	if _, err := s2.Pull(ctx, ref, image.PullOptions{AuthConfigPath: cfg}, nil); err != nil {
		t.Fatalf("pull with config.json: %v", err)
	}
}

func TestPullErrorsLeaveStoreIntact(t *testing.T) {
	reg := imagetest.NewRegistry(t, imagetest.RegistryOptions{})
	addr := reg.Addr
	imagetest.Push(t, imagetest.BusyboxImage(t), addr+"/busybox:latest")
	// A layer that is not a tar, one that escapes, and one whose blob the
	// registry will serve corrupted.
	imagetest.Push(t, imagetest.NewImage(t, v1.Config{}, static.NewLayer([]byte("this is not a tar archive, not even close"), types.OCIUncompressedLayer)), addr+"/garbage:latest")
	evil := bytes.Buffer{}
	tw := tar.NewWriter(&evil)
	tw.WriteHeader(&tar.Header{Name: "../../escape", Typeflag: tar.TypeReg, Size: 1, Mode: 0o644})
	tw.Write([]byte("x"))
	tw.Close()
	imagetest.Push(t, imagetest.NewImage(t, v1.Config{}, static.NewLayer(evil.Bytes(), types.OCIUncompressedLayer)), addr+"/evil:latest")
	corruptImg := imagetest.NewImage(t, v1.Config{}, imagetest.Layer(t, []imagetest.Entry{{Name: "f", Body: bytes.Repeat([]byte("data"), 1000)}}))
	imagetest.Push(t, corruptImg, addr+"/corrupt:latest")
	corruptLayer, _ := corruptImg.Layers()
	ld, _ := corruptLayer[0].Digest()
	blob := filepath.Join(reg.Storage, "docker/registry/v2/blobs/sha256", ld.Hex[:2], ld.Hex, "data")
	b, err := os.ReadFile(blob)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)/2] ^= 0xff
	if err := os.WriteFile(blob, b, 0o644); err != nil {
		t.Fatal(err)
	}

	s := openStore(t)
	ctx := context.Background()
	if _, err := s.Pull(ctx, addr+"/busybox", image.PullOptions{}, nil); err != nil {
		t.Fatal(err)
	}
	refs := []string{addr + "/busybox", addr + "/garbage", addr + "/evil", addr + "/corrupt"}
	before := state(t, s, refs...)
	tests := []struct {
		ref      string
		opts     image.PullOptions
		notFound bool
	}{
		{ref: "Busybox"},
		{ref: "a b"},
		{ref: ""},
		{ref: addr + "/busybox:bad tag"},
		{ref: "http://" + addr + "/busybox"},
		{ref: addr + "/nope:latest", notFound: true},
		{ref: addr + "/busybox:nope", notFound: true},
		{ref: addr + "/busybox@sha256:" + strings.Repeat("0", 64), notFound: true},
		{ref: "127.0.0.1:1/busybox"},
		{ref: addr + "/busybox", opts: image.PullOptions{Platform: "linux"}},
		{ref: addr + "/garbage"},
		{ref: addr + "/evil"},
		{ref: addr + "/corrupt"},
	}
	for _, tc := range tests {
		_, err := s.Pull(ctx, tc.ref, tc.opts, nil)
		if err == nil {
			t.Errorf("Pull(%q) succeeded", tc.ref)
			continue
		}
		t.Logf("Pull(%q): %v", tc.ref, err)
		oneLine(t, err)
		if errors.Is(err, image.ErrNotFound) != tc.notFound {
			t.Errorf("Pull(%q) = %v; ErrNotFound %v, want %v", tc.ref, err, errors.Is(err, image.ErrNotFound), tc.notFound)
		}
		if after := state(t, s, refs...); after != before {
			t.Errorf("Pull(%q) changed the store:\n%s\n%s", tc.ref, before, after)
		}
	}
	ents, err := os.ReadDir(filepath.Join(s.Root(), "tmp"))
	if err != nil || len(ents) != 0 {
		t.Errorf("tmp/ after failed pulls: %v %v", ents, err)
	}
}

func TestConcurrentPulls(t *testing.T) {
	addr := imagetest.StartRegistry(t)
	imagetest.Push(t, imagetest.BusyboxImage(t), addr+"/busybox:latest")
	imagetest.Push(t, imagetest.BusyboxImage(t), addr+"/other:latest")
	s := openStore(t)
	const n = 6
	ids := make([]string, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			ref := addr + "/busybox"
			if i%2 == 1 {
				ref = addr + "/other"
			}
			img, err := s.Pull(context.Background(), ref, image.PullOptions{}, nil)
			if err != nil {
				t.Error(err)
				return
			}
			ids[i] = img.ID
			if _, err := s.List(); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	for _, id := range ids {
		if id != ids[0] {
			t.Fatalf("concurrent pulls gave different images: %v", ids)
		}
	}
	img, err := s.Get(ids[0])
	if err != nil || len(img.RepoTags) != 2 {
		t.Errorf("after concurrent pulls: %+v, %v", img, err)
	}
	layers, _ := os.ReadDir(filepath.Join(s.Root(), "layers"))
	if len(layers) != 1 {
		t.Errorf("%d layer directories, want 1", len(layers))
	}
}

func TestOpenIsExclusive(t *testing.T) {
	dir := t.TempDir()
	s, err := image.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := image.Open(dir); err == nil {
		t.Fatal("a second Open of the same store succeeded")
	} else {
		oneLine(t, err)
	}
	s.Close()
	s2, err := image.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	s2.Close()
}
