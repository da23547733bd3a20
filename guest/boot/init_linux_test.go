//go:build linux

package boot

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// testRoleEnv makes the test binary act as PID 1 ("init") or as the agent
// ("agent") for TestSupervisorReapsOrphansOnly.
const testRoleEnv = "VMBOX_BOOT_TEST_ROLE"

func TestMain(m *testing.M) {
	switch os.Getenv(testRoleEnv) {
	case "init":
		os.Exit(testInitRole())
	case "agent":
		os.Exit(testAgentRole())
	}
	os.Exit(m.Run())
}

// testInitRole stands in for PID 1: a child subreaper receives orphans
// exactly as init does.
func testInitRole() int {
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		fmt.Fprintln(os.Stderr, "subreaper:", err)
		return 3
	}
	sigs := make(chan os.Signal, 16)
	signal.Notify(sigs, initSignals...)
	exe, err := os.Executable()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 3
	}
	sup := &supervisor{
		sigs: sigs,
		start: func() (int, error) {
			return syscall.ForkExec(exe, []string{exe}, &syscall.ProcAttr{
				Env:   withRole("agent"),
				Files: []uintptr{0, 1, 2},
			})
		},
		done:  func() {},
		grace: 20 * time.Second,
	}
	sup.run()
	return 0
}

// testAgentRole checks what the agent relies on: its own children's exit
// statuses arrive intact while init reaps concurrently, and the orphans its
// children leave behind are reaped by init. It then waits for SIGTERM.
func testAgentRole() int {
	term := make(chan os.Signal, 1)
	signal.Notify(term, unix.SIGTERM)
	var wg sync.WaitGroup
	var bad sync.Map
	for i := 0; i < 30; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Each child also leaves an orphan behind for init.
			cmd := exec.Command("sh", "-c", fmt.Sprintf("(sleep 0.05; exit 9) & exit %d", i%100))
			err := cmd.Run()
			code := 0
			if ee, ok := err.(*exec.ExitError); ok {
				code = ee.ExitCode()
			} else if err != nil {
				code = -1
			}
			if code != i%100 {
				bad.Store(i, code)
			}
		}()
	}
	wg.Wait()
	failed := false
	bad.Range(func(k, v any) bool {
		fmt.Fprintf(os.Stderr, "child %v exited %v\n", k, v)
		failed = true
		return true
	})
	if failed {
		return 4
	}
	// Wait until init has no child but us: orphans that exited are only
	// gone once init reaped them.
	deadline := time.Now().Add(30 * time.Second)
	for {
		left := childrenOf(os.Getppid(), os.Getpid())
		if len(left) == 0 {
			break
		}
		if time.Now().After(deadline) {
			fmt.Fprintf(os.Stderr, "init still has children %v\n", left)
			return 5
		}
		time.Sleep(10 * time.Millisecond)
	}
	fmt.Println("agent ready")
	<-term
	return 42
}

func withRole(role string) []string {
	var env []string
	for _, e := range os.Environ() {
		if !strings.HasPrefix(e, testRoleEnv+"=") {
			env = append(env, e)
		}
	}
	return append(env, testRoleEnv+"="+role)
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// childrenOf lists the pids (with state) whose parent is ppid, except skip.
func childrenOf(ppid, skip int) []string {
	ents, _ := os.ReadDir("/proc")
	var out []string
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == skip {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		s := string(b)
		i := strings.LastIndexByte(s, ')')
		f := strings.Fields(s[i+1:])
		if len(f) > 1 && f[1] == strconv.Itoa(ppid) {
			out = append(out, e.Name()+":"+f[0])
		}
	}
	return out
}

// TestSupervisorReapsOrphansOnly runs the supervisor in a child-subreaper
// process (standing in for PID 1) with the agent as its child.
func TestSupervisorReapsOrphansOnly(t *testing.T) {
	if _, err := exec.LookPath("sh"); err != nil {
		t.Skip("no sh")
	}
	cmd := exec.Command(os.Args[0])
	cmd.Env = withRole("init")
	var stderr lockedBuffer
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if sc.Text() == "agent ready" {
				// Shutdown request to init: forwarded to the agent as SIGTERM.
				_ = cmd.Process.Signal(unix.SIGTERM)
			}
		}
		done <- cmd.Wait()
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("init: %v; stderr:\n%s", err, stderr.String())
		}
	case <-time.After(2 * time.Minute):
		_ = cmd.Process.Kill()
		t.Fatalf("init did not finish; stderr:\n%s", stderr.String())
	}
	if !strings.Contains(stderr.String(), "vmbox-init: agent exited: exit status 42") {
		t.Fatalf("agent did not finish cleanly after the forwarded SIGTERM; stderr:\n%s", stderr.String())
	}
}

func TestParseStatStateFlags(t *testing.T) {
	tests := []struct {
		in    string
		state byte
		flags uint64
		ok    bool
	}{
		{"1 (init) S 0 1 1 0 -1 4194560 100 0", 'S', 4194560, true},
		{"42 (a) b) c) Z 1 42 42 0 -1 4194564 0 0", 'Z', 4194564, true},
		{"2 (kthreadd) S 0 0 0 0 -1 2129984 0 0", 'S', 2129984, true},
		{"7 (x) R 1 2", 0, 0, false},
		{"garbage", 0, 0, false},
	}
	for _, tt := range tests {
		state, flags, ok := parseStatStateFlags(tt.in)
		if state != tt.state || flags != tt.flags || ok != tt.ok {
			t.Errorf("parseStatStateFlags(%q) = %c %d %v", tt.in, state, flags, ok)
		}
	}
	if _, flags, _ := parseStatStateFlags("2 (kthreadd) S 0 0 0 0 -1 2129984 0 0"); flags&pfKthread == 0 {
		t.Error("kthreadd not recognised as a kernel thread")
	}
}

func TestNotGuest(t *testing.T) {
	// The test runs on a host, not as PID 1's agent: destructive calls refuse.
	if inGuest() {
		t.Skip("running as PID 1 or its agent")
	}
	if Init() {
		t.Error("Init reported guest mode on a host")
	}
	if err := PowerOff(t.Context()); err == nil {
		t.Fatal("PowerOff did not refuse outside the guest")
	}
	if err := SetClock(time.Now()); err == nil {
		t.Error("setSystemClock did not refuse outside the guest")
	}
	if err := bringCPUsOnline(0); err == nil {
		t.Error("bringCPUsOnline did not refuse outside the guest")
	}
}

func TestDescribeStatus(t *testing.T) {
	if got := describeStatus(unix.WaitStatus(3 << 8)); got != "exit status 3" {
		t.Errorf("exit: %s", got)
	}
	if got := describeStatus(unix.WaitStatus(9)); got != "killed by killed" {
		t.Errorf("signal: %s", got)
	}
}
