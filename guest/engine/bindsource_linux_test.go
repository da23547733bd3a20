package engine

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vmbox/vmbox/guest/api"
)

func TestBindSource(t *testing.T) {
	dir := t.TempDir()
	shared := filepath.Join(dir, "shared")
	inShare := func(p string) bool { return api.ShareCovers(shared, p) }
	for _, c := range []struct {
		name        string
		hostFolders func(string) bool
		source      string
		create      bool
		wantErr     string // "" for success
		made        bool
	}{
		{"-v in a share is made", inShare, filepath.Join(shared, "a/b"), true, "", true},
		{"-v outside the shares is refused", inShare, filepath.Join(dir, "elsewhere"), true, "vmbox start --mount", false},
		{"--mount never makes one", inShare, filepath.Join(shared, "c"), false, "does not exist", false},
		{"on a Linux host -v makes it anywhere", nil, filepath.Join(dir, "local"), true, "", true},
		{"an existing source is fine", inShare, dir, false, "", true},
	} {
		e := &Engine{opts: Options{HostFolders: c.hostFolders}}
		err := e.bindSource(api.Mount{Type: api.MountBind, Source: c.source, Target: "/x", CreateSource: c.create})
		switch {
		case c.wantErr == "" && err != nil:
			t.Errorf("%s: %v", c.name, err)
		case c.wantErr != "" && (err == nil || !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), c.wantErr)):
			t.Errorf("%s: err = %v, want ErrInvalid with %q", c.name, err, c.wantErr)
		}
		if _, statErr := os.Stat(c.source); (statErr == nil) != c.made {
			t.Errorf("%s: source exists = %v, want %v", c.name, statErr == nil, c.made)
		}
	}
}
