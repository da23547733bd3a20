package qemu

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

const envHelper = "VMBOX_QEMU_TEST_OWNER_DIR"

// TestQEMUDiesWithOwner starts QEMU from a helper process (this test
// binary again), SIGKILLs the helper, and checks that QEMU follows it,
// and that QEMU ran in its own process group.
func TestQEMUDiesWithOwner(t *testing.T) {
	if dir := os.Getenv(envHelper); dir != "" {
		ownQEMU(t, dir)
		return
	}
	echoGuest(t, "amd64") // skips when there is no guest to boot
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^TestQEMUDiesWithOwner$")
	cmd.Env = append(os.Environ(), envHelper+"="+dir, envGuestTmp+"="+guestTmp(t))
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	pid := 0
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "qemu-pid "); ok {
			pid, _ = strconv.Atoi(v)
			break
		}
	}
	if pid == 0 {
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatal("the helper did not start QEMU")
	}
	defer syscall.Kill(pid, syscall.SIGKILL)
	if pgid, err := syscall.Getpgid(pid); err != nil || pgid != pid {
		t.Errorf("QEMU's process group is %d (%v), want its own (%d)", pgid, err, pid)
	}
	if !alive(pid) {
		t.Fatal("QEMU is not running while its owner lives")
	}
	cmd.Process.Kill()
	cmd.Wait()
	// The kernel delivers the parent death signal at once; the bound only
	// keeps a broken build from hanging the test.
	for i := 0; i < 600 && alive(pid); i++ {
		time.Sleep(50 * time.Millisecond)
	}
	if alive(pid) {
		t.Fatalf("QEMU (pid %d) outlived the process that started it", pid)
	}
}

// ownQEMU is the helper: it starts a VM, reports QEMU's pid and waits to
// be killed.
func ownQEMU(t *testing.T, dir string) {
	g := echoGuest(t, "amd64")
	vm := startVM(t, New(Options{}), testSpec(t, g, dir))
	fmt.Printf("qemu-pid %d\n", vm.Pid())
	// Start a few goroutines that come and go, so that the Go runtime has
	// reason to juggle threads while QEMU runs.
	for i := 0; i < 100; i++ {
		go func() { time.Sleep(time.Millisecond) }()
	}
	select {}
}

// alive reports whether pid exists and is not a zombie.
func alive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i >= 0 && i+2 < len(s) && s[i+2] != 'Z'
}
