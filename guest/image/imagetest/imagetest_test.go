package imagetest

import (
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func TestBusyboxRootfs(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "rootfs")
	BusyboxRootfs(t, dir)
	out, err := exec.Command(BusyboxPath, "--list").Output()
	if err != nil {
		t.Fatal(err)
	}
	for _, applet := range strings.Fields(string(out)) {
		if l, err := os.Readlink(filepath.Join(dir, "bin", applet)); applet != "busybox" && (err != nil || l != "busybox") {
			t.Errorf("bin/%s -> %q, %v", applet, l, err)
		}
	}
	got, err := exec.Command(filepath.Join(dir, "bin/sh"), "-c", "echo ok").Output()
	if err != nil || string(got) != "ok\n" {
		t.Errorf("bin/sh -c 'echo ok' = %q, %v", got, err)
	}
	for _, d := range []string{"dev", "proc", "sys", "tmp", "etc/passwd", "etc/group"} {
		if _, err := os.Stat(filepath.Join(dir, d)); err != nil {
			t.Error(err)
		}
	}
	if st, err := os.Stat(filepath.Join(dir, "tmp")); err != nil || st.Mode()&os.ModeSticky == 0 {
		t.Errorf("tmp is not sticky: %v %v", st.Mode(), err)
	}
}

func TestImagesAreReproducible(t *testing.T) {
	a, err := BusyboxImage(t).Digest()
	if err != nil {
		t.Fatal(err)
	}
	b, err := BusyboxImage(t).Digest()
	if err != nil {
		t.Fatal(err)
	}
	if a != b {
		t.Errorf("two busybox builds differ: %s %s", a, b)
	}
	cf, err := HelloImage(t).ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if len(cf.Config.Entrypoint) != 1 || cf.Config.Entrypoint[0] != "/hello" {
		t.Errorf("hello entrypoint %v", cf.Config.Entrypoint)
	}
}

func TestHelloBinary(t *testing.T) {
	out, err := exec.Command(BuildHello(t), "x", "y").Output()
	if err != nil || string(out) != HelloOutput+"\nx y\n" {
		t.Errorf("hello printed %q, %v", out, err)
	}
}

func TestRegistry(t *testing.T) {
	addr := StartRegistry(t)
	resp, err := http.Get("http://" + addr + "/v2/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("/v2/ = %s", resp.Status)
	}
	Push(t, BusyboxImage(t), addr+"/busybox:latest")
	resp, err = http.Get("http://" + addr + "/v2/busybox/tags/list")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("tags/list = %s", resp.Status)
	}

	reg := NewRegistry(t, RegistryOptions{User: "u", Password: "p"})
	resp, err = http.Get("http://" + reg.Addr + "/v2/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("/v2/ without credentials = %s, want 401", resp.Status)
	}
	reg.Push(t, BusyboxImage(t), "busybox:latest")
}
