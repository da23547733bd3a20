package image

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/vmbox/vmbox/guest/image/imagetest"
)

// crashSpec tells the helper process what to do and where to die.
type crashSpec struct {
	Root string
	Op   string // "pull", "load", "rmi"
	Arg  string // reference or archive path
	Step string // crash hook step
	Hit  int    // die at the Hit-th time Step is reached
}

const crashEnv = "VMBOX_IMAGE_CRASH_SPEC"

// TestCrashHelper is the process TestCrashConsistency kills. It does
// nothing unless started by it.
func TestCrashHelper(t *testing.T) {
	raw := os.Getenv(crashEnv)
	if raw == "" {
		t.Skip("helper process for TestCrashConsistency")
	}
	var spec crashSpec
	if err := json.Unmarshal([]byte(raw), &spec); err != nil {
		t.Fatal(err)
	}
	s, err := Open(spec.Root)
	if err != nil {
		t.Fatal(err)
	}
	hits := 0
	s.crashHook = func(step string) {
		if step != spec.Step {
			return
		}
		if hits++; hits == spec.Hit {
			fmt.Println("CRASHPOINT")
			os.Stdout.Sync()
			select {} // wait to be killed
		}
	}
	switch spec.Op {
	case "pull":
		_, err = s.Pull(context.Background(), spec.Arg, PullOptions{}, nil)
	case "load":
		var f *os.File
		if f, err = os.Open(spec.Arg); err == nil {
			_, err = s.Load(f)
			f.Close()
		}
	case "rmi":
		_, err = s.Remove([]string{spec.Arg}, true, nil)
	}
	if err != nil {
		t.Fatal(err)
	}
	fmt.Println("DONE")
}

// runUntilCrash runs the helper and SIGKILLs it at the crash point. It
// reports whether the point was reached.
func runUntilCrash(t *testing.T, spec crashSpec) bool {
	t.Helper()
	b, _ := json.Marshal(spec)
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashHelper$", "-test.count=1")
	cmd.Env = append(os.Environ(), crashEnv+"="+string(b))
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	reached := false
	sc := bufio.NewScanner(out)
	var lines []string
	for sc.Scan() {
		lines = append(lines, sc.Text())
		if sc.Text() == "CRASHPOINT" {
			reached = true
			cmd.Process.Kill()
			break
		}
	}
	cmd.Wait()
	if !reached && !strings.Contains(strings.Join(lines, "\n"), "DONE") {
		t.Fatalf("helper failed: %s %s", strings.Join(lines, "\n"), stderr.String())
	}
	return reached
}

// checkConsistent opens a store after a crash and checks the invariants:
// nothing half-done is visible, every record is complete, nothing
// unreferenced is left on disk.
func checkConsistent(t *testing.T, root string, strict bool) *Store {
	t.Helper()
	s, err := Open(root)
	if err != nil {
		t.Fatalf("open after crash: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	if ents, _ := os.ReadDir(filepath.Join(root, tmpDir)); len(ents) != 0 {
		t.Errorf("tmp/ not cleaned: %d entries", len(ents))
	}
	raw, err := os.ReadFile(filepath.Join(root, indexFile))
	if err == nil && strict {
		var onDisk index
		if err := json.Unmarshal(raw, &onDisk); err != nil {
			t.Fatalf("index.json after crash: %v", err)
		}
		for id, r := range onDisk.Images {
			if !s.complete(r) {
				t.Errorf("index.json names image %s whose content is missing", id)
			}
		}
		for tag, id := range onDisk.Tags {
			if onDisk.Images[id] == nil {
				t.Errorf("tag %s points at missing image %s", tag, id)
			}
		}
	}
	list, err := s.List()
	if err != nil {
		t.Fatal(err)
	}
	ref := s.referenced()
	for _, sum := range list {
		img, err := s.Get(sum.ID)
		if err != nil {
			t.Fatal(err)
		}
		for _, l := range img.Layers {
			if _, err := os.Stat(filepath.Join(l, "bin/busybox")); err != nil {
				t.Errorf("image %s layer incomplete: %v", sum.ID, err)
			}
		}
	}
	for _, d := range []string{blobDir, layerDir} {
		ents, _ := os.ReadDir(filepath.Join(root, d))
		for _, e := range ents {
			if !ref["sha256:"+e.Name()] {
				t.Errorf("unreferenced %s/%s left after open", d, e.Name())
			}
		}
	}
	return s
}

func TestCrashConsistency(t *testing.T) {
	if testing.Short() {
		t.Skip("starts many processes")
	}
	reg := imagetest.NewRegistry(t, imagetest.RegistryOptions{})
	bb := imagetest.BusyboxImage(t)
	imagetest.Push(t, bb, reg.Addr+"/busybox:latest")
	ref := reg.Addr + "/busybox:latest"
	archive := filepath.Join(t.TempDir(), "busybox.tar")
	f, err := os.Create(archive)
	if err != nil {
		t.Fatal(err)
	}
	imagetest.WriteDockerArchive(t, f, map[string]v1.Image{"busybox:latest": bb})
	f.Close()
	id, _ := bb.ConfigName()

	type step struct {
		step string
		hits int
	}
	steps := map[string][]step{
		"pull": {{"blob-written", 3}, {"blob-renamed", 3}, {"layer-unpacked", 1}, {"layer-renamed", 1}, {"index-written", 1}, {"index-renamed", 1}},
		"load": {{"blob-written", 2}, {"blob-renamed", 3}, {"layer-renamed", 1}, {"index-written", 1}, {"index-renamed", 1}},
		"rmi":  {{"index-written", 1}, {"index-renamed", 1}, {"gc-moved", 1}},
	}
	for _, op := range []string{"pull", "load", "rmi"} {
		for _, st := range steps[op] {
			for hit := 1; hit <= st.hits; hit++ {
				name := fmt.Sprintf("%s/%s#%d", op, st.step, hit)
				t.Run(name, func(t *testing.T) {
					root := t.TempDir()
					arg := ref
					switch op {
					case "load":
						arg = archive
					case "rmi":
						// Start from a store that has the image.
						s, err := Open(root)
						if err != nil {
							t.Fatal(err)
						}
						if _, err := s.Pull(context.Background(), ref, PullOptions{}, nil); err != nil {
							t.Fatal(err)
						}
						s.Close()
					}
					if !runUntilCrash(t, crashSpec{Root: root, Op: op, Arg: arg, Step: st.step, Hit: hit}) {
						t.Fatalf("%s did not reach %s %d times", op, st.step, hit)
					}
					s := checkConsistent(t, root, true)
					img, err := s.Get(ref)
					if op == "load" {
						img, err = s.Get("busybox:latest")
					}
					switch {
					case err == nil && img.ID != id.String():
						t.Errorf("after the crash the tag points at %s, want %s", img.ID, id)
					case err != nil && !isNotFound(err):
						t.Errorf("Get after crash: %v", err)
					}
					// The operation can be redone from whatever state was left.
					switch op {
					case "pull":
						_, err = s.Pull(context.Background(), ref, PullOptions{}, nil)
					case "load":
						var f *os.File
						if f, err = os.Open(archive); err == nil {
							_, err = s.Load(f)
							f.Close()
						}
					case "rmi":
						err = nil
						if _, gerr := s.Get(ref); gerr == nil {
							_, err = s.Remove([]string{ref}, true, nil)
						}
					}
					if err != nil {
						t.Fatalf("redo %s after crash: %v", op, err)
					}
					s.Close()
					checkConsistent(t, root, true)
				})
			}
		}
	}
}

func isNotFound(err error) bool {
	return err != nil && strings.Contains(err.Error(), ErrNotFound.Error())
}

func TestOpenRecovers(t *testing.T) {
	root := t.TempDir()
	bb := imagetest.BusyboxImage(t)
	var buf bytes.Buffer
	imagetest.WriteDockerArchive(t, &buf, map[string]v1.Image{"busybox:latest": bb})
	s, err := Open(root)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Load(&buf); err != nil {
		t.Fatal(err)
	}
	before, _ := s.List()
	// A record whose blobs are gone, as if someone deleted files by hand.
	broken := "sha256:" + strings.Repeat("e", 64)
	s.mu.Lock()
	next := s.idx.clone()
	next.Images[broken] = &record{ID: broken, Manifest: "sha256:" + strings.Repeat("f", 64)}
	next.Tags["docker.io/library/broken:latest"] = broken
	if err := s.commit(next); err != nil {
		t.Fatal(err)
	}
	s.mu.Unlock()
	s.Close()

	// Leftovers of interrupted operations.
	for _, p := range []string{"tmp/blob-123", "tmp/layer-1/fs/bin/sh", "tmp/index-9", "layers/" + strings.Repeat("a", 64) + "/fs/half", "blobs/sha256/" + strings.Repeat("b", 64)} {
		full := filepath.Join(root, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte("partial"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// Not strict: the broken record stays in index.json (Open hides it but
	// never drops what it cannot vouch for), everything else must hold.
	s = checkConsistent(t, root, false)
	after, _ := s.List()
	if len(after) != 1 || after[0].ID != before[0].ID {
		t.Errorf("after recovery List = %+v, want %+v", after, before)
	}
	if _, err := s.Get("broken"); err == nil {
		t.Error("an image with missing content is visible")
	}
	s.Close()

	// An index.json that cannot be read is never overwritten.
	if err := os.WriteFile(filepath.Join(root, indexFile), []byte("{not json"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(root); err == nil || strings.Contains(err.Error(), "\n") {
		t.Errorf("Open with a corrupt index: %v", err)
	}
	if b, _ := os.ReadFile(filepath.Join(root, indexFile)); string(b) != "{not json" {
		t.Error("the corrupt index was overwritten")
	}
}
