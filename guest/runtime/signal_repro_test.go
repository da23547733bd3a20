package runtime_test

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vmbox/vmbox/guest/runtime"
)

func procStatus(pid int) string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return err.Error()
	}
	var keep []string
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "Sig") || strings.HasPrefix(l, "ShdPnd") || strings.HasPrefix(l, "NSpid") || strings.HasPrefix(l, "Name") || strings.HasPrefix(l, "State") || strings.HasPrefix(l, "PPid") {
			keep = append(keep, l)
		}
	}
	return strings.Join(keep, " | ")
}

func TestReproSignal(t *testing.T) {
	r := newRuntime(t, runtime.Options{})
	n := 100
	if v := os.Getenv("REPRO_N"); v != "" {
		fmt.Sscan(v, &n)
	}
	for i := 0; i < n; i++ {
		s := spec(t, "sh", "-c", "trap 'echo got-term; exit 143' TERM; echo ready; while :; do sleep 0.05; done")
		c, err := r.Start(context.Background(), s)
		if err != nil {
			t.Fatal(err)
		}
		br := bufio.NewReader(c.Stdout)
		line, err := br.ReadString('\n')
		if err != nil || line != "ready\n" {
			t.Fatalf("read %q: %v", line, err)
		}
		if err := c.Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		done := make(chan runtime.Exit, 1)
		go func() { e, _ := c.Wait(); done <- e }()
		select {
		case e := <-done:
			if e.Code != 143 {
				t.Fatalf("iteration %d: exit %+v", i, e)
			}
		case <-time.After(10 * time.Second):
			t.Errorf("iteration %d: pid %d status: %s", i, c.Pid, procStatus(c.Pid))
			ents, _ := os.ReadDir("/proc")
			for _, e := range ents {
				b, _ := os.ReadFile("/proc/" + e.Name() + "/stat")
				if strings.Contains(string(b), fmt.Sprintf(") S %d ", os.Getpid())) || strings.Contains(string(b), fmt.Sprintf(") Z %d ", os.Getpid())) {
					t.Errorf("child %s: %s", e.Name(), procStatus(atoi(e.Name())))
				}
			}
			c.Signal(syscall.SIGKILL)
			<-done
			t.FailNow()
		}
		c.Stdout.Close()
		c.Stderr.Close()
		os.RemoveAll(s.Dir)
	}
}

func atoi(s string) int { var n int; fmt.Sscan(s, &n); return n }
