package instance

import (
	"path"
	"slices"
	"testing"

	"github.com/vmbox/vmbox/guest/api"
)

func TestGuestPathOn(t *testing.T) {
	for _, c := range []struct{ goos, in, want string }{
		{"linux", "/home/me/src", "/home/me/src"},
		{"linux", "/tmp/", "/tmp"},
		{"darwin", "/Users/me/Projects/app", "/Users/me/Projects/app"},
		{"windows", `C:\Users\me\src`, "/mnt/c/Users/me/src"},
		{"windows", `d:/work`, "/mnt/d/work"},
		{"windows", `C:\`, "/mnt/c"},
	} {
		if got := guestPathOn(c.goos, c.in); got != c.want {
			t.Errorf("guestPathOn(%s, %q) = %q, want %q", c.goos, c.in, got, c.want)
		}
	}
}

func TestIsHostPathOn(t *testing.T) {
	for _, c := range []struct {
		goos, in string
		want     bool
	}{
		{"linux", "/src", true}, {"linux", "./src", true}, {"linux", "data", false},
		{"windows", `C:\src`, true}, {"linux", `C:\src`, false}, {"windows", "db", false},
	} {
		if got := isHostPathOn(c.goos, c.in); got != c.want {
			t.Errorf("isHostPathOn(%s, %q) = %v", c.goos, c.in, got)
		}
	}
}

func TestSharesOf(t *testing.T) {
	clean := func(p string) string { return path.Clean(p) }
	for _, c := range []struct {
		name     string
		defaults []string
		mounts   []Mount
		want     []api.Share
	}{
		{"defaults", []string{"/home/me", "/tmp"}, nil, []api.Share{
			{HostPath: "/home/me", GuestPath: "/home/me"}, {HostPath: "/tmp", GuestPath: "/tmp"}}},
		{"an inner mount of the same access is left out", []string{"/home/me", "/tmp"}, []Mount{{HostPath: "/home/me/src"}}, []api.Share{
			{HostPath: "/home/me", GuestPath: "/home/me"}, {HostPath: "/tmp", GuestPath: "/tmp"}}},
		{"a read-only inner mount stays, after its outer one", []string{"/home/me"}, []Mount{{HostPath: "/home/me/src", ReadOnly: true}}, []api.Share{
			{HostPath: "/home/me", GuestPath: "/home/me"}, {HostPath: "/home/me/src", GuestPath: "/home/me/src", ReadOnly: true}}},
		{"a read-write mount inside a read-only one inside the home stays", []string{"/home/me"}, []Mount{{HostPath: "/home/me/src", ReadOnly: true}, {HostPath: "/home/me/src/out"}}, []api.Share{
			{HostPath: "/home/me", GuestPath: "/home/me"}, {HostPath: "/home/me/src", GuestPath: "/home/me/src", ReadOnly: true}, {HostPath: "/home/me/src/out", GuestPath: "/home/me/src/out"}}},
		{"a mount wins over its default", []string{"/home/me"}, []Mount{{HostPath: "/home/me", ReadOnly: true}}, []api.Share{
			{HostPath: "/home/me", GuestPath: "/home/me", ReadOnly: true}}},
		{"a root home is shared; a default on a system path is not", []string{"/", "/data"}, nil, []api.Share{
			{HostPath: "/data", GuestPath: "/data"}}},
	} {
		got := sharesOf(c.defaults, c.mounts, clean)
		if !slices.Equal(got, c.want) {
			t.Errorf("%s: got %+v, want %+v", c.name, got, c.want)
		}
	}
	shares := []api.Share{{GuestPath: "/home/me"}, {GuestPath: "/home/me/src", ReadOnly: true}}
	if sh, ok := ShareOf(shares, "/home/me/src/x"); !ok || !sh.ReadOnly {
		t.Errorf("ShareOf picks %+v, %v", sh, ok)
	}
	if _, ok := ShareOf(shares, "/etc"); ok {
		t.Error("ShareOf(/etc)")
	}
}
