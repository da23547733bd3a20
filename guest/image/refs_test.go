package image

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestParseRef(t *testing.T) {
	tests := []struct {
		in        string
		canonical string
		familiar  string
		repo      string
		err       bool
	}{
		{"busybox", "docker.io/library/busybox:latest", "busybox:latest", "docker.io/library/busybox", false},
		{"busybox:1.36", "docker.io/library/busybox:1.36", "busybox:1.36", "docker.io/library/busybox", false},
		{"docker.io/library/busybox", "docker.io/library/busybox:latest", "busybox:latest", "docker.io/library/busybox", false},
		{"index.docker.io/library/busybox:x", "docker.io/library/busybox:x", "busybox:x", "docker.io/library/busybox", false},
		{"user/app", "docker.io/user/app:latest", "user/app:latest", "docker.io/user/app", false},
		{"127.0.0.1:5000/a/b:t", "127.0.0.1:5000/a/b:t", "127.0.0.1:5000/a/b:t", "127.0.0.1:5000/a/b", false},
		{"localhost/x", "localhost/x:latest", "localhost/x:latest", "localhost/x", false},
		{"busybox@sha256:" + strings.Repeat("ab", 32), "docker.io/library/busybox@sha256:" + strings.Repeat("ab", 32), "busybox@sha256:" + strings.Repeat("ab", 32), "docker.io/library/busybox", false},
		{"", "", "", "", true},
		{"Busybox", "", "", "", true},
		{"a b", "", "", "", true},
		{"busybox:bad tag", "", "", "", true},
		{"http://example.com/x", "", "", "", true},
		{"busybox@sha256:123", "", "", "", true},
	}
	for _, tc := range tests {
		r, err := parseRef(tc.in)
		if (err != nil) != tc.err {
			t.Errorf("parseRef(%q) error = %v, want error %v", tc.in, err, tc.err)
			continue
		}
		if err != nil {
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("parseRef(%q): multi-line error %q", tc.in, err)
			}
			continue
		}
		if r.canonical() != tc.canonical || familiar(r.canonical()) != tc.familiar || r.repo != tc.repo || repoOf(r.canonical()) != tc.repo {
			t.Errorf("parseRef(%q) = %q (familiar %q, repo %q, repoOf %q), want %q %q %q", tc.in, r.canonical(), familiar(r.canonical()), r.repo, repoOf(r.canonical()), tc.canonical, tc.familiar, tc.repo)
		}
	}
}

func TestDigestHex(t *testing.T) {
	good := "sha256:" + strings.Repeat("0f", 32)
	for _, d := range []string{good} {
		if _, err := digestHex(d); err != nil {
			t.Errorf("digestHex(%q): %v", d, err)
		}
	}
	for _, d := range []string{"", "sha256:", "sha512:" + strings.Repeat("0f", 32), "sha256:" + strings.Repeat("0F", 32), "sha256:../../../../etc/passwd" + strings.Repeat("a", 36), good + "0"} {
		if _, err := digestHex(d); err == nil {
			t.Errorf("digestHex(%q) accepted", d)
		}
	}
}

func TestAllowHTTP(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		registry string
		insecure []string
		want     bool
	}{
		{"127.0.0.1:5000", nil, true},
		{"127.0.0.1", nil, true},
		{"localhost:5000", nil, true},
		{"[::1]:5000", nil, true},
		{"10.0.2.2:5000", nil, true},
		{"192.168.1.10", nil, true},
		{"172.16.0.1:443", nil, true},
		{"169.254.1.1:5000", nil, true},
		{"8.8.8.8:5000", nil, false},
		{"index.docker.io", nil, false},
		{"docker.io", nil, false},
		{"registry.example:5000", []string{"registry.example:5000"}, true},
		{"registry.example:5000", []string{"http://registry.example"}, true},
		{"other.example:5000", []string{"registry.example:5000"}, false},
		{"myregistry", nil, false},
	}
	for _, tc := range tests {
		if got := allowHTTP(ctx, tc.registry, tc.insecure); got != tc.want {
			t.Errorf("allowHTTP(%q, %v) = %v, want %v", tc.registry, tc.insecure, got, tc.want)
		}
	}
}

func TestAuthFromConfigFile(t *testing.T) {
	p := filepath.Join(t.TempDir(), "config.json")
	cfg := `{"auths": {
		"https://index.docker.io/v1/": {"auth": "aHViOnB3"},
		"127.0.0.1:5000": {"username": "alice", "password": "secret"},
		"https://ghcr.io": {"identitytoken": "tok"}
	}}`
	if err := os.WriteFile(p, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		registry, user, pass, token string
		found                       bool
	}{
		{"index.docker.io", "hub", "pw", "", true},
		{"127.0.0.1:5000", "alice", "secret", "", true},
		{"ghcr.io", "", "", "tok", true},
		{"127.0.0.1:5001", "", "", "", false},
	}
	for _, tc := range tests {
		a, err := authFromConfigFile(p, tc.registry)
		if err != nil {
			t.Fatal(err)
		}
		if (a != nil) != tc.found {
			t.Errorf("%s: found %v, want %v", tc.registry, a != nil, tc.found)
			continue
		}
		if a != nil && (a.Username != tc.user || a.Password != tc.pass || a.IdentityToken != tc.token) {
			t.Errorf("%s: got %+v", tc.registry, a)
		}
	}
	if _, err := authFromConfigFile(filepath.Join(t.TempDir(), "none.json"), "x"); err == nil {
		t.Error("missing config file accepted")
	}
}

func TestParsePlatform(t *testing.T) {
	for _, s := range []string{"linux/amd64", "linux/arm64/v8", ""} {
		if _, err := parsePlatform(s); err != nil {
			t.Errorf("parsePlatform(%q): %v", s, err)
		}
	}
	for _, s := range []string{"linux", "/amd64", "linux/"} {
		if _, err := parsePlatform(s); err == nil {
			t.Errorf("parsePlatform(%q) accepted", s)
		}
	}
}

func TestSniffCompression(t *testing.T) {
	tests := []struct {
		b    []byte
		want compression
	}{
		{[]byte{0x1f, 0x8b, 8, 0}, compressionGzip},
		{[]byte{0x28, 0xb5, 0x2f, 0xfd}, compressionZstd},
		{[]byte("ustar"), compressionNone},
		{nil, compressionNone},
	}
	for _, tc := range tests {
		if got := sniffCompression(tc.b); got != tc.want {
			t.Errorf("sniffCompression(%x) = %v, want %v", tc.b, got, tc.want)
		}
	}
}

func TestIndexLookup(t *testing.T) {
	id1 := "sha256:aaaa" + strings.Repeat("1", 60)
	id2 := "sha256:aaab" + strings.Repeat("2", 60)
	x := newIndex()
	x.Images[id1] = &record{ID: id1, Manifest: "sha256:" + strings.Repeat("3", 64), Created: time.Unix(1, 0), RepoDigests: []string{"docker.io/library/one@sha256:" + strings.Repeat("4", 64)}}
	x.Images[id2] = &record{ID: id2, Manifest: "sha256:" + strings.Repeat("5", 64)}
	x.Tags["docker.io/library/one:latest"] = id1
	x.Tags["127.0.0.1:5000/two:v1"] = id2
	tests := []struct {
		ref    string
		want   string
		byName bool
		err    bool
	}{
		{"one", id1, true, false},
		{"one:latest", id1, true, false},
		{"docker.io/library/one", id1, true, false},
		{"127.0.0.1:5000/two:v1", id2, true, false},
		{id1, id1, false, false},
		{strings.TrimPrefix(id2, "sha256:"), id2, false, false},
		{"aaaa1", id1, false, false},
		{"sha256:aaab", id2, false, false},
		{"aaa", "", false, true}, // ambiguous
		{"one@sha256:" + strings.Repeat("4", 64), id1, true, false},
		{"127.0.0.1:5000/two@sha256:" + strings.Repeat("5", 64), id2, false, false},
		{"two", "", false, true},
		{"one:v2", "", false, true},
		{"", "", false, true},
		{"ffff", "", false, true},
	}
	for _, tc := range tests {
		r, byName, err := x.lookup(tc.ref)
		if (err != nil) != tc.err {
			t.Errorf("lookup(%q) error %v, want error %v", tc.ref, err, tc.err)
			continue
		}
		if err != nil {
			continue
		}
		if r.ID != tc.want || (byName != nil) != tc.byName {
			t.Errorf("lookup(%q) = %s byName %v, want %s byName %v", tc.ref, r.ID, byName != nil, tc.want, tc.byName)
		}
	}
}
