package e2e

import (
	"bytes"
	"crypto/md5"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// hostFolderCases: host folders shared into the VM, as bind mounts of
// containers; ownership, read-only binds, symlinks that must not reach
// the host's files, the paths the VM cannot see, and host changes that
// reach inotify watchers in a container.
func hostFolderCases(t *testing.T, tg *target) {
	img := tg.reg + "/busybox"
	// The temporary directory is shared by default, as is the home.
	dir := t.TempDir()
	must := func(args ...string) result {
		t.Helper()
		r := tg.run(args...)
		if r.code != 0 {
			t.Fatalf("%v: %s", args, r)
		}
		return r
	}
	oneLine := func(r result) bool { return strings.Count(strings.TrimSpace(r.stderr), "\n") == 0 }
	if err := os.WriteFile(filepath.Join(dir, "in.txt"), []byte("from the host\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/etc", filepath.Join(dir, "etclink")); err != nil {
		t.Fatal(err)
	}
	bind := dir + ":/app"

	t.Run("a container reads a host file and its files reach the host as the host user's", func(t *testing.T) {
		r := must("run", "--rm", "-v", bind, img, "sh", "-c",
			"cat /app/in.txt && echo from-ctr > /app/out.txt && mkdir -p /app/made/deep && chmod 640 /app/out.txt && chown 1000:1000 /app/out.txt")
		if r.stdout != "from the host\n" {
			t.Errorf("read %q", r.stdout)
		}
		b, err := os.ReadFile(filepath.Join(dir, "out.txt"))
		if err != nil || string(b) != "from-ctr\n" {
			t.Fatalf("host reads %q, %v", b, err)
		}
		fi, err := os.Stat(filepath.Join(dir, "out.txt"))
		if err != nil {
			t.Fatal(err)
		}
		st := fi.Sys().(*syscall.Stat_t)
		if int(st.Uid) != os.Getuid() || int(st.Gid) != os.Getgid() || fi.Mode().Perm() != 0o640 {
			t.Errorf("out.txt: uid %d gid %d mode %v; want the host user's (%d:%d), 0640", st.Uid, st.Gid, fi.Mode(), os.Getuid(), os.Getgid())
		}
		if fi, err := os.Stat(filepath.Join(dir, "made/deep")); err != nil || !fi.IsDir() {
			t.Errorf("mkdir -p in the container: %v", err)
		}
	})
	t.Run("large files keep every byte both ways, through virtiofs when the host can serve it", func(t *testing.T) {
		big := make([]byte, 8<<20+12345)
		for i := range big {
			big[i] = byte(i*7 + i>>13)
		}
		if err := os.WriteFile(filepath.Join(dir, "big.bin"), big, 0o644); err != nil {
			t.Fatal(err)
		}
		want := fmt.Sprintf("%x", md5.Sum(big))
		r := must("run", "--rm", "-v", bind, img, "sh", "-c",
			"md5sum /app/big.bin && dd if=/app/big.bin of=/app/copy.bin bs=65536 conv=fsync 2>/dev/null && cat /app/big.bin >> /app/copy.bin")
		if got, _, _ := strings.Cut(r.stdout, " "); got != want {
			t.Errorf("md5 in the container %q, want %q", got, want)
		}
		copied, err := os.ReadFile(filepath.Join(dir, "copy.bin"))
		if err != nil || !bytes.Equal(copied, append(append([]byte{}, big...), big...)) {
			t.Errorf("the container's copy on the host: %d bytes (want %d), %v", len(copied), 2*len(big), err)
		}
		// The data path: virtiofs when vmbox runs as root with a virtiofsd.
		via := "sftp"
		if os.Geteuid() == 0 && (exists("/usr/lib/qemu/virtiofsd") || exists("/usr/libexec/virtiofsd")) {
			via = "virtiofs"
		}
		st := tg.e.run(append(append([]string{}, tg.args...), "status")...)
		if wantLine := "shared folder: " + os.TempDir() + " (rw, " + via + ")"; !strings.Contains(st.stdout, wantLine) {
			t.Errorf("vmbox status lacks %q:\n%s", wantLine, st.stdout)
		}
	})
	t.Run("a container user other than root writes the host user's files", func(t *testing.T) {
		must("run", "--rm", "--user", "1000:1000", "-v", bind, img, "sh", "-c", "echo more >> /app/in.txt")
		if b, _ := os.ReadFile(filepath.Join(dir, "in.txt")); string(b) != "from the host\nmore\n" {
			t.Errorf("in.txt is %q", b)
		}
	})
	t.Run(":ro refuses writes", func(t *testing.T) {
		r := tg.run("run", "--rm", "-v", bind+":ro", img, "sh", "-c", "cat /app/in.txt >/dev/null && echo x > /app/ro.txt")
		if r.code == 0 || !strings.Contains(r.stderr, "Read-only file system") {
			t.Errorf("write to a read-only bind: %s", r)
		}
		if _, err := os.Stat(filepath.Join(dir, "ro.txt")); err == nil {
			t.Error("the read-only bind wrote to the host")
		}
	})
	t.Run("a symlink to /etc in a share leads to the container's /etc, not the host's", func(t *testing.T) {
		r := must("run", "--rm", "--hostname", "inside-ctr", "-v", bind, img, "cat", "/app/etclink/hostname")
		if r.stdout != "inside-ctr\n" {
			t.Errorf("/app/etclink/hostname reads %q", r.stdout)
		}
	})
	t.Run("a missing -v source is made on the host; --mount refuses one", func(t *testing.T) {
		must("run", "--rm", "-v", filepath.Join(dir, "new/sub")+":/n", img, "touch", "/n/f")
		if _, err := os.Stat(filepath.Join(dir, "new/sub/f")); err != nil {
			t.Errorf("the missing source was not made on the host: %v", err)
		}
		r := tg.run("run", "--rm", "--mount", "type=bind,source="+filepath.Join(dir, "absent")+",target=/n", img, "true")
		if r.code != 125 || !oneLine(r) || !strings.Contains(r.stderr, "does not exist") {
			t.Errorf("--mount of a missing source: %s", r)
		}
	})
	t.Run("a path outside the shares gives one line naming --mount", func(t *testing.T) {
		r := tg.run("run", "--rm", "-v", "/srv/vmbox-e2e-unshared:/x", img, "true")
		if r.code != 125 || !oneLine(r) || !strings.Contains(r.stderr, "--mount") {
			t.Errorf("-v of an unshared path: %s", r)
		}
	})
	t.Run("docker run -v through the Docker API", func(t *testing.T) {
		d := dockerClient{t: t, bin: dockerCLIs["cli28"], host: dockerHost(t, tg.e), cfg: t.TempDir()}
		if r := d.run("", "run", "--rm", "-v", bind, img, "head", "-n1", "/app/in.txt"); r.code != 0 || r.stdout != "from the host\n" {
			t.Errorf("docker run -v: %s", r)
		}
	})
	t.Run("host changes reach an inotify watcher in a container", func(t *testing.T) {
		build := exec.Command("go", "build", "-o", filepath.Join(dir, "inotifywatch"), "./testdata/inotifywatch")
		build.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := build.CombinedOutput(); err != nil {
			t.Fatalf("build the watcher: %v\n%s", err, out)
		}
		id := strings.TrimSpace(must("run", "-d", "-v", bind, img, "/app/inotifywatch", "/app").stdout)
		defer tg.run("rm", "-f", id)
		waitLog := func(want string) (time.Duration, bool) {
			start := time.Now()
			for time.Since(start) < 15*time.Second {
				if r := tg.run("logs", id); strings.Contains(r.stdout, want+"\n") {
					return time.Since(start), true
				}
				time.Sleep(50 * time.Millisecond)
			}
			return 0, false
		}
		if _, ok := waitLog("watching"); !ok {
			t.Fatalf("the watcher did not start: %s", tg.run("logs", id))
		}
		host := func(what string, f func() error) func() {
			return func() {
				if err := f(); err != nil {
					t.Fatalf("%s on the host: %v", what, err)
				}
			}
		}
		p := func(name string) string { return filepath.Join(dir, name) }
		for _, step := range []struct {
			name   string
			change func()
			want   []string
		}{
			{"create", host("create", func() error { return os.WriteFile(p("c1.txt"), []byte("new"), 0o644) }), []string{"CREATE c1.txt"}},
			{"write", host("append", func() error {
				f, err := os.OpenFile(p("in.txt"), os.O_WRONLY|os.O_APPEND, 0)
				if err != nil {
					return err
				}
				f.WriteString("edited\n")
				return f.Close()
			}), []string{"MODIFY in.txt", "CLOSE_WRITE in.txt"}},
			{"chmod", host("chmod", func() error { return os.Chmod(p("out.txt"), 0o600) }), []string{"ATTRIB out.txt"}},
			{"mkdir", host("mkdir", func() error { return os.Mkdir(p("newdir"), 0o755) }), []string{"CREATE newdir"}},
			{"rename", host("rename", func() error { return os.Rename(p("c1.txt"), p("c2.txt")) }), []string{"DELETE c1.txt", "CREATE c2.txt"}},
			{"remove", host("remove", func() error { return os.Remove(p("out.txt")) }), []string{"DELETE out.txt"}},
		} {
			step.change()
			for _, want := range step.want {
				took, ok := waitLog(want)
				if !ok {
					t.Errorf("%s: the watcher never saw %q; it saw:\n%s", step.name, want, tg.run("logs", id).stdout)
					continue
				}
				t.Logf("%s: %q seen %v after the host's change (each look costs a vmbox logs)", step.name, want, took.Round(time.Millisecond))
			}
		}
		if r := must("exec", id, "cat", "/app/in.txt"); !strings.HasSuffix(r.stdout, "edited\n") {
			t.Errorf("after the host's edit the container reads %q", r.stdout)
		}
		// A command that lives in the host folder: exec goes through the
		// agent's trampoline (its fork must not wait on its own FUSE).
		os.WriteFile(p("run.sh"), []byte("#!/bin/sh\necho ran from the host folder in $(pwd)\n"), 0o755)
		if r := must("exec", "-w", "/app", id, "/app/run.sh"); r.stdout != "ran from the host folder in /app\n" {
			t.Errorf("exec of a command in the host folder: %s", r)
		}
		if r := tg.run("exec", id, "/app/in.txt"); r.code != 126 {
			t.Errorf("exec of a non-executable file in the host folder: %s (want 126)", r)
		}
	})
}

func exists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}
