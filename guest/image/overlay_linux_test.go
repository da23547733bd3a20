//go:build linux

package image

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// TestOverlayStacking mounts unpacked layers as overlayfs lowerdirs, the way
// containers use them, and checks that whiteouts and opaque directories
// hide what they should.
func TestOverlayStacking(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("mounting overlayfs needs root")
	}
	base := t.TempDir()
	lower, upper, merged := filepath.Join(base, "lower"), filepath.Join(base, "upper"), filepath.Join(base, "merged")
	for _, d := range []string{lower, upper, merged} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	layer1 := mkTar(t, dir("etc/"), reg("etc/hosts", "old"), reg("etc/keep", "keep"),
		dir("opq/"), reg("opq/old", "old"), dir("gone/"), reg("gone/x", "x"), dir("recreated/"), reg("recreated/old", "old"))
	layer2 := mkTar(t, reg("etc/.wh.hosts", ""), dir("opq/"), reg("opq/.wh..wh..opq", ""), reg("opq/new", "new"),
		reg(".wh.gone", ""), reg(".wh.recreated", ""), dir("recreated/"), reg("recreated/new", "new"))
	if err := extractTar(lower, bytes.NewReader(layer1)); err != nil {
		t.Fatal(err)
	}
	if err := extractTar(upper, bytes.NewReader(layer2)); err != nil {
		t.Fatal(err)
	}

	type outcome struct {
		skip string
		err  error
		got  map[string][]string
	}
	result := make(chan outcome, 1)
	go func() {
		// The mount lives in a private mount namespace of this thread only;
		// the thread is never unlocked, so it exits with the goroutine.
		runtime.LockOSThread()
		if err := unix.Unshare(unix.CLONE_NEWNS); err != nil {
			result <- outcome{skip: "unshare mount namespace: " + err.Error()}
			return
		}
		if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
			result <- outcome{err: fmt.Errorf("make mounts private: %w", err)}
			return
		}
		if err := unix.Mount("overlay", merged, "overlay", unix.MS_RDONLY, "lowerdir="+upper+":"+lower); err != nil {
			if errors.Is(err, unix.ENODEV) {
				result <- outcome{skip: "overlayfs is not available"}
			} else {
				result <- outcome{err: fmt.Errorf("mount overlay: %w", err)}
			}
			return
		}
		names := func(d string) []string {
			ents, _ := os.ReadDir(filepath.Join(merged, d))
			var out []string
			for _, e := range ents {
				out = append(out, e.Name())
			}
			return out
		}
		got := map[string][]string{"etc": names("etc"), "opq": names("opq"), ".": names("."), "recreated": names("recreated")}
		unix.Unmount(merged, 0)
		result <- outcome{got: got}
	}()
	r := <-result
	if r.skip != "" {
		t.Skip(r.skip)
	}
	if r.err != nil {
		t.Fatal(r.err)
	}
	want := map[string][]string{"etc": {"keep"}, "opq": {"new"}, ".": {"etc", "opq", "recreated"}, "recreated": {"new"}}
	for d, w := range want {
		if !slices.Equal(r.got[d], w) {
			t.Errorf("merged %s = %s, want %s", d, strings.Join(r.got[d], ","), strings.Join(w, ","))
		}
	}
}
