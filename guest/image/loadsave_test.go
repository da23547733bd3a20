package image_test

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/vmbox/vmbox/guest/api"
	"github.com/vmbox/vmbox/guest/image"
	"github.com/vmbox/vmbox/guest/image/imagetest"
)

func configName(t *testing.T, img v1.Image) string {
	t.Helper()
	h, err := img.ConfigName()
	if err != nil {
		t.Fatal(err)
	}
	return h.String()
}

func dockerArchive(t *testing.T, byRef map[string]v1.Image) []byte {
	t.Helper()
	var buf bytes.Buffer
	imagetest.WriteDockerArchive(t, &buf, byRef)
	return buf.Bytes()
}

func markerImage(t *testing.T, text string) v1.Image {
	return imagetest.NewImage(t, v1.Config{Cmd: []string{"/marker"}}, imagetest.Layer(t, []imagetest.Entry{{Name: "marker", Body: []byte(text)}}))
}

func TestLoadSaveRoundTrip(t *testing.T) {
	bb, hello := imagetest.BusyboxImage(t), imagetest.HelloImage(t)
	s := openStore(t)
	loaded, err := s.Load(bytes.NewReader(dockerArchive(t, map[string]v1.Image{"busybox:latest": bb, "example.com/hello:v1": hello})))
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(loaded)
	if !slices.Equal(loaded, []string{"busybox:latest", "example.com/hello:v1"}) {
		t.Errorf("loaded %q", loaded)
	}
	h, err := s.Get("example.com/hello:v1")
	if err != nil {
		t.Fatal(err)
	}
	if h.ID != configName(t, hello) || !slices.Equal(h.Config.Entrypoint, []string{"/hello"}) {
		t.Errorf("hello image %+v", h)
	}
	out, err := exec.Command(filepath.Join(h.Layers[0], "hello"), "a", "b").Output()
	if err != nil || string(out) != imagetest.HelloOutput+"\na b\n" {
		t.Errorf("hello printed %q, %v", out, err)
	}

	archive := filepath.Join(t.TempDir(), "saved.tar")
	f, err := os.Create(archive)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Save(f, []string{"busybox", "example.com/hello:v1"}); err != nil {
		t.Fatal(err)
	}
	f.Close()

	s2 := openStore(t)
	f, err = os.Open(archive)
	if err != nil {
		t.Fatal(err)
	}
	loaded2, err := s2.Load(f)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(loaded2)
	if !slices.Equal(loaded2, loaded) {
		t.Errorf("reloaded %q, want %q", loaded2, loaded)
	}
	refs := []string{"busybox", "example.com/hello:v1"}
	if a, b := state(t, s, refs...), state(t, s2, refs...); stripRoots(a, s.Root()) != stripRoots(b, s2.Root()) {
		t.Errorf("round trip changed the images:\n%s\n%s", a, b)
	}

	// By ID: no name travels.
	var byID bytes.Buffer
	if err := s.Save(&byID, []string{h.ID[7:19]}); err != nil {
		t.Fatal(err)
	}
	s3 := openStore(t)
	loaded3, err := s3.Load(&byID)
	if err != nil || !slices.Equal(loaded3, []string{h.ID}) {
		t.Errorf("load of an unnamed save: %q, %v", loaded3, err)
	}

	if _, err := exec.LookPath("skopeo"); err == nil {
		for _, ref := range []string{"docker-archive:" + archive + ":busybox:latest", "oci-archive:" + archive + ":v1"} {
			out, err := exec.Command("skopeo", "inspect", "--config", ref).Output()
			if err != nil {
				t.Errorf("skopeo inspect %s: %v", ref, err)
				continue
			}
			var cfg v1.ConfigFile
			if err := json.Unmarshal(out, &cfg); err != nil || len(cfg.RootFS.DiffIDs) != 1 {
				t.Errorf("skopeo inspect %s: %s, %v", ref, out, err)
			}
		}
		dir := t.TempDir()
		if out, err := exec.Command("skopeo", "copy", "--quiet", "docker-archive:"+archive+":busybox:latest", "oci:"+filepath.Join(dir, "oci")+":latest").CombinedOutput(); err != nil {
			t.Errorf("skopeo copy of the saved archive: %v: %s", err, out)
		}
	}
	if err := s.Save(io.Discard, []string{"nope"}); !errors.Is(err, image.ErrNotFound) {
		t.Errorf("Save(nope) = %v, want ErrNotFound", err)
	}
}

func stripRoots(s, root string) string { return strings.ReplaceAll(s, root, "ROOT") }

func TestLoadFormats(t *testing.T) {
	bb := imagetest.BusyboxImage(t)
	id := configName(t, bb)
	var oci, ociTagOnly bytes.Buffer
	imagetest.WriteOCIArchive(t, &oci, map[string]v1.Image{"busybox:latest": bb})
	imagetest.WriteOCIArchive(t, &ociTagOnly, map[string]v1.Image{"latest": bb})
	tests := []struct {
		name    string
		archive func(t *testing.T) []byte
		want    []string
		// Converting to OCI rewrites the config, and so the image ID.
		otherID bool
	}{
		{"docker-save", func(t *testing.T) []byte { return dockerArchive(t, map[string]v1.Image{"busybox:latest": bb}) }, []string{"busybox:latest"}, false},
		{"oci with name", func(*testing.T) []byte { return oci.Bytes() }, []string{"busybox:latest"}, false},
		{"oci with tag only", func(*testing.T) []byte { return ociTagOnly.Bytes() }, []string{id}, false},
		{"skopeo docker-archive", func(t *testing.T) []byte { return skopeoArchive(t, bb, "docker-archive") }, []string{"busybox:latest"}, false},
		{"skopeo oci-archive", func(t *testing.T) []byte { return skopeoArchive(t, bb, "oci-archive") }, []string{"busybox:latest"}, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := openStore(t)
			got, err := s.Load(bytes.NewReader(tc.archive(t)))
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("loaded %q, want %q", got, tc.want)
			}
			img, err := s.Get(got[0])
			if err != nil || img.ID != id && !tc.otherID {
				t.Fatalf("Get(%s) = %+v, %v; want ID %s", got[0], img, err, id)
			}
			if _, err := os.Stat(filepath.Join(img.Layers[0], "bin/busybox")); err != nil {
				t.Error(err)
			}
		})
	}
}

// skopeoArchive pushes img to a registry and has skopeo copy it into an
// archive of the given transport, the way users produce archives.
func skopeoArchive(t *testing.T, img v1.Image, transport string) []byte {
	t.Helper()
	if _, err := exec.LookPath("skopeo"); err != nil {
		t.Skip("skopeo is not installed")
	}
	addr := imagetest.StartRegistry(t)
	imagetest.Push(t, img, addr+"/busybox:latest")
	p := filepath.Join(t.TempDir(), "a.tar")
	out, err := exec.Command("skopeo", "copy", "--quiet", "--src-tls-verify=false", "docker://"+addr+"/busybox:latest", transport+":"+p+":busybox:latest").CombinedOutput()
	if err != nil {
		t.Fatalf("skopeo copy: %v: %s", err, out)
	}
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// rewriteTar re-emits an archive through edit, which may change or drop
// (return nil) entries.
func rewriteTar(t *testing.T, archive []byte, edit func(hdr *tar.Header, body []byte) (*tar.Header, []byte)) []byte {
	t.Helper()
	var out bytes.Buffer
	tr := tar.NewReader(bytes.NewReader(archive))
	tw := tar.NewWriter(&out)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		body, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		hdr, body = edit(hdr, body)
		if hdr == nil {
			continue
		}
		hdr.Size = int64(len(body))
		if err := tw.WriteHeader(hdr); err != nil {
			t.Fatal(err)
		}
		tw.Write(body)
	}
	tw.Close()
	return out.Bytes()
}

func TestLoadCorruptArchives(t *testing.T) {
	bb := imagetest.BusyboxImage(t)
	good := dockerArchive(t, map[string]v1.Image{"other:latest": markerImage(t, "m")})
	var oci bytes.Buffer
	imagetest.WriteOCIArchive(t, &oci, map[string]v1.Image{"other:latest": markerImage(t, "m")})
	evilTar := bytes.Buffer{}
	tw := tar.NewWriter(&evilTar)
	tw.WriteHeader(&tar.Header{Name: "/../../../escape", Typeflag: tar.TypeSymlink, Linkname: "/"})
	tw.WriteHeader(&tar.Header{Name: "../x", Typeflag: tar.TypeReg, Size: 0})
	tw.Close()
	evil := dockerArchive(t, map[string]v1.Image{"evil:latest": imagetest.NewImage(t, v1.Config{}, static.NewLayer(evilTar.Bytes(), types.OCIUncompressedLayer))})

	tests := []struct {
		name    string
		archive []byte
	}{
		{"empty", nil},
		{"garbage", []byte(strings.Repeat("not a tar ", 100))},
		{"truncated at an entry boundary", good[:len(good)/2/512*512]},
		{"truncated inside an entry", good[:len(good)/2/512*512+700]},
		{"no manifest", rewriteTar(t, good, func(h *tar.Header, b []byte) (*tar.Header, []byte) {
			if h.Name == "manifest.json" {
				return nil, nil
			}
			return h, b
		})},
		{"manifest names a missing layer", rewriteTar(t, good, func(h *tar.Header, b []byte) (*tar.Header, []byte) {
			if strings.HasSuffix(h.Name, ".tar.gz") {
				return nil, nil
			}
			return h, b
		})},
		{"manifest is not json", rewriteTar(t, good, func(h *tar.Header, b []byte) (*tar.Header, []byte) {
			if h.Name == "manifest.json" {
				return h, []byte("{")
			}
			return h, b
		})},
		{"layer does not match the config", rewriteTar(t, good, func(h *tar.Header, b []byte) (*tar.Header, []byte) {
			if strings.HasSuffix(h.Name, ".tar.gz") {
				return h, imagetest.TarBytes(t, []imagetest.Entry{{Name: "other", Body: []byte("x")}})
			}
			return h, b
		})},
		{"oci blob does not match its digest", rewriteTar(t, oci.Bytes(), func(h *tar.Header, b []byte) (*tar.Header, []byte) {
			if strings.HasPrefix(h.Name, "blobs/sha256/") && len(b) > 200 {
				b = slices.Clone(b)
				b[100] ^= 1
			}
			return h, b
		})},
		{"oci index is not json", rewriteTar(t, oci.Bytes(), func(h *tar.Header, b []byte) (*tar.Header, []byte) {
			if h.Name == "index.json" {
				return h, []byte("[")
			}
			return h, b
		})},
		{"hostile layer", evil},
	}
	s := openStore(t)
	if _, err := s.Load(bytes.NewReader(dockerArchive(t, map[string]v1.Image{"busybox:latest": bb}))); err != nil {
		t.Fatal(err)
	}
	refs := []string{"busybox", "other", "evil"}
	before := state(t, s, refs...)
	count := func(dir string) int {
		ents, err := os.ReadDir(filepath.Join(s.Root(), dir))
		if err != nil {
			t.Fatal(err)
		}
		return len(ents)
	}
	blobs, layers := count("blobs/sha256"), count("layers")
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := s.Load(bytes.NewReader(tc.archive))
			if err == nil {
				t.Fatalf("Load succeeded: %q", got)
			}
			t.Logf("Load: %v", err)
			oneLine(t, err)
			if after := state(t, s, refs...); after != before {
				t.Errorf("failed load changed the store:\n%s\n%s", before, after)
			}
			if count("tmp") != 0 || count("blobs/sha256") != blobs || count("layers") != layers {
				t.Errorf("failed load left files: tmp %d, blobs %d (was %d), layers %d (was %d)", count("tmp"), count("blobs/sha256"), blobs, count("layers"), layers)
			}
		})
	}
}

func TestRemove(t *testing.T) {
	imgA := imagetest.BusyboxImage(t)
	imgB := markerImage(t, "b")
	idA, idB := configName(t, imgA), configName(t, imgB)
	archive := dockerArchive(t, map[string]v1.Image{"a:1": imgA, "a:2": imgA, "b:1": imgA, "c:1": imgB})
	untag := func(n string) api.RmiResult { return api.RmiResult{Untagged: n} }
	del := func(id string) api.RmiResult { return api.RmiResult{Deleted: id} }
	tests := []struct {
		name     string
		names    []string
		force    bool
		inUse    string // image ID a container uses
		want     []api.RmiResult
		wantErr  string
		notFound bool
		images   []string // image IDs left
		tags     []string // tags left
	}{
		{name: "untag one of several", names: []string{"a:1"}, want: []api.RmiResult{untag("a:1")}, images: []string{idA, idB}, tags: []string{"a:2", "b:1", "c:1"}},
		{name: "last tag deletes", names: []string{"c:1"}, want: []api.RmiResult{untag("c:1"), del(idB)}, images: []string{idA}, tags: []string{"a:1", "a:2", "b:1"}},
		{name: "all tags one by one", names: []string{"a:1", "a:2", "b:1"}, want: []api.RmiResult{untag("a:1"), untag("a:2"), untag("b:1"), del(idA)}, images: []string{idB}, tags: []string{"c:1"}},
		{name: "ID in several repositories needs force", names: []string{idA}, wantErr: "referenced in multiple repositories", images: []string{idA, idB}, tags: []string{"a:1", "a:2", "b:1", "c:1"}},
		{name: "forced ID", names: []string{idA}, force: true, want: []api.RmiResult{untag("a:1"), untag("a:2"), untag("b:1"), del(idA)}, images: []string{idB}, tags: []string{"c:1"}},
		{name: "short ID in one repository", names: []string{idB[7:19]}, want: []api.RmiResult{untag("c:1"), del(idB)}, images: []string{idA}, tags: []string{"a:1", "a:2", "b:1"}},
		{name: "in use by tag", names: []string{"c:1"}, inUse: idB, wantErr: "must force", images: []string{idA, idB}, tags: []string{"a:1", "a:2", "b:1", "c:1"}},
		{name: "in use by ID", names: []string{idB}, inUse: idB, wantErr: "being used", images: []string{idA, idB}, tags: []string{"a:1", "a:2", "b:1", "c:1"}},
		{name: "in use forced keeps the image", names: []string{"c:1"}, force: true, inUse: idB, want: []api.RmiResult{untag("c:1")}, images: []string{idA, idB}, tags: []string{"a:1", "a:2", "b:1"}},
		{name: "in use, other tags remain", names: []string{"a:1"}, inUse: idA, want: []api.RmiResult{untag("a:1")}, images: []string{idA, idB}, tags: []string{"a:2", "b:1", "c:1"}},
		{name: "missing and present", names: []string{"nope", "c:1"}, want: []api.RmiResult{untag("c:1"), del(idB)}, notFound: true, wantErr: "no such image", images: []string{idA}, tags: []string{"a:1", "a:2", "b:1"}},
		{name: "missing", names: []string{"nope:1"}, notFound: true, wantErr: "no such image", images: []string{idA, idB}, tags: []string{"a:1", "a:2", "b:1", "c:1"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := openStore(t)
			if _, err := s.Load(bytes.NewReader(archive)); err != nil {
				t.Fatal(err)
			}
			inUse := func(id string) bool { return id == tc.inUse }
			got, err := s.Remove(tc.names, tc.force, inUse)
			if tc.wantErr == "" && err != nil || tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)) {
				t.Errorf("Remove error %v, want %q", err, tc.wantErr)
			}
			oneLine(t, err)
			if errors.Is(err, image.ErrNotFound) != tc.notFound {
				t.Errorf("Remove error %v: ErrNotFound %v, want %v", err, errors.Is(err, image.ErrNotFound), tc.notFound)
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("Remove = %+v, want %+v", got, tc.want)
			}
			list, _ := s.List()
			var ids, tags []string
			blobs, layers := 0, 0
			for _, im := range list {
				ids = append(ids, im.ID)
				tags = append(tags, im.RepoTags...)
				ii, err := s.Inspect(im.ID)
				if err != nil {
					t.Fatal(err)
				}
				blobs += 2 + len(ii.RootFS.Layers)
				layers += len(ii.RootFS.Layers)
			}
			slices.Sort(ids)
			slices.Sort(tags)
			want := slices.Sorted(slices.Values(tc.images))
			if !slices.Equal(ids, want) || !slices.Equal(tags, tc.tags) {
				t.Errorf("left images %v tags %v, want %v %v", ids, tags, want, tc.tags)
			}
			// Garbage collection: exactly what the remaining images need.
			if n := countDir(t, s.Root(), "blobs/sha256"); n != blobs {
				t.Errorf("%d blobs left, want %d", n, blobs)
			}
			if n := countDir(t, s.Root(), "layers"); n != layers {
				t.Errorf("%d layers left, want %d", n, layers)
			}
		})
	}
}

func countDir(t *testing.T, root, dir string) int {
	t.Helper()
	ents, err := os.ReadDir(filepath.Join(root, dir))
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}

func TestRemovePulledImage(t *testing.T) {
	addr := imagetest.StartRegistry(t)
	digest := imagetest.Push(t, imagetest.BusyboxImage(t), addr+"/busybox:latest")
	s := openStore(t)
	img, err := s.Pull(context.Background(), addr+"/busybox", image.PullOptions{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	got, err := s.Remove([]string{addr + "/busybox"}, false, nil)
	want := []api.RmiResult{{Untagged: addr + "/busybox:latest"}, {Untagged: addr + "/busybox@" + digest}, {Deleted: img.ID}}
	if err != nil || !slices.Equal(got, want) {
		t.Errorf("Remove = %+v, %v; want %+v", got, err, want)
	}
	for _, d := range []string{"blobs/sha256", "layers", "tmp"} {
		if n := countDir(t, s.Root(), d); n != 0 {
			t.Errorf("%s has %d entries after removing the only image", d, n)
		}
	}
	if _, err := os.Stat(img.Layers[0]); err == nil {
		t.Error("the layer directory survived")
	}
}

func TestDuplicateLayersAreListedOnce(t *testing.T) {
	l1 := imagetest.Layer(t, []imagetest.Entry{{Name: "a", Body: []byte("1")}})
	l2 := imagetest.Layer(t, []imagetest.Entry{{Name: "b", Body: []byte("2")}})
	img := imagetest.NewImage(t, v1.Config{}, l1, l2, l1)
	s := openStore(t)
	if _, err := s.Load(bytes.NewReader(dockerArchive(t, map[string]v1.Image{"dup:latest": img}))); err != nil {
		t.Fatal(err)
	}
	got, err := s.Get("dup")
	if err != nil {
		t.Fatal(err)
	}
	ii, err := s.Inspect("dup")
	if err != nil {
		t.Fatal(err)
	}
	if len(ii.RootFS.Layers) != 3 || len(got.Layers) != 2 {
		t.Fatalf("rootfs %v, layer dirs %v", ii.RootFS.Layers, got.Layers)
	}
	// Lowest first: l2, then l1 at its topmost place.
	if _, err := os.Stat(filepath.Join(got.Layers[0], "b")); err != nil {
		t.Error(err)
	}
	if _, err := os.Stat(filepath.Join(got.Layers[1], "a")); err != nil {
		t.Error(err)
	}
	var saved bytes.Buffer
	if err := s.Save(&saved, []string{"dup"}); err != nil {
		t.Fatal(err)
	}
	s2 := openStore(t)
	if _, err := s2.Load(&saved); err != nil {
		t.Fatalf("reload: %v", err)
	}
}
