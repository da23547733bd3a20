package api

import (
	"errors"
	"fmt"
	"os"
	"syscall"
	"testing"
)

func TestCheckShareGuestPath(t *testing.T) {
	for _, c := range []struct {
		path string
		ok   bool
	}{
		{"/root", true}, {"/tmp", true}, {"/home/me/src", true}, {"/Users/me", true},
		{"/mnt/c/Users/me", true}, {"/usr/local/src", true}, {"/var/folders/x/T", true}, {"/opt", true},
		{"/", false}, {"/usr", false}, {"/etc", false}, {"/var", false}, {"/var/lib", false},
		{"/proc/1", false}, {"/run/user/1000", false}, {"/var/lib/vmbox/x", false}, {"/dev", false},
		{"relative", false}, {"/a/../b", false}, {"/tmp/", false},
	} {
		if err := CheckShareGuestPath(c.path); (err == nil) != c.ok {
			t.Errorf("CheckShareGuestPath(%q) = %v, want ok=%v", c.path, err, c.ok)
		}
	}
}

func TestShareErrnoRoundTrip(t *testing.T) {
	for _, e := range []syscall.Errno{syscall.ENOENT, syscall.EEXIST, syscall.ENOTEMPTY, syscall.EROFS, syscall.EACCES} {
		err := &os.PathError{Op: "op", Path: "p", Err: e}
		got, ok := ShareErrno(ShareErrorMessage(fmt.Errorf("wrapped: %w", err)))
		if !ok || got != e {
			t.Errorf("%v: round trip gives %v, %v", e, got, ok)
		}
	}
	if got, ok := ShareErrno(ShareErrorMessage(errors.New("odd"))); !ok || got != syscall.EIO {
		t.Errorf("an unnamed error gives %v, %v, want EIO", got, ok)
	}
	if _, ok := ShareErrno("no name here"); ok {
		t.Error("a message without a name must not parse")
	}
	if !ShareCovers("/tmp", "/tmp/x/y") || ShareCovers("/tmp", "/tmpx") || !ShareCovers("/tmp", "/tmp") {
		t.Error("ShareCovers")
	}
}

func TestWindowsVolumeSpec(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{`C:\Users\me\src:/app`, "/mnt/c/Users/me/src:/app"},
		{`d:/work:/w:ro`, "/mnt/d/work:/w:ro"},
		{`C:\:/c`, "/mnt/c:/c"},
		{"db:/data", "db:/data"},
		{"/src:/app", "/src:/app"},
		{"c:/data", "/mnt/c/data"},
		{"cc:/data", "cc:/data"},
	} {
		if got := WindowsVolumeSpec(c.in); got != c.want {
			t.Errorf("WindowsVolumeSpec(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}
