package container

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"runtime"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/vmbox/vmbox/guest/container/internal/nsinit"
)

type spawnReq struct {
	hostNet bool
	reply   chan spawnResult
}

type spawnResult struct {
	h   *helper
	err error
}

// helper is an init waiting for its configuration, already inside the
// cgroup it will confine the container with.
type helper struct {
	proc    *os.Process
	sock    int
	hostNet bool
	cg      cgroup
}

func (h *helper) discard() {
	unix.Close(h.sock)
	_ = h.proc.Kill()
	_, _ = h.proc.Wait()
	_ = h.cg.remove()
}

// spawnLoop forks every helper from one locked thread. The helpers ask for
// SIGKILL when their parent dies, and Linux means the parent thread: Go
// ends a thread whenever a goroutine that locked it returns (exec does
// that on purpose), so forking from an arbitrary thread could kill a
// container at a random later moment.
func (r *Runtime) spawnLoop() {
	defer r.spawnWG.Done()
	runtime.LockOSThread()
	defer runtime.UnlockOSThread() // the thread is clean: give it back
	for req := range r.spawnCh {
		h, err := r.doSpawn(req.hostNet)
		req.reply <- spawnResult{h, err}
		if errors.Is(err, errThreadStuck) {
			// This thread could not leave a container's cgroup: let it die
			// (a locked goroutine's thread ends with it) and go on with a
			// fresh one.
			r.spawnWG.Add(1)
			go r.spawnLoop()
			runtimeGoexitLocked()
			return
		}
	}
}

// errThreadStuck reports that the spawning thread could not move back out
// of a helper's cgroup (v1).
var errThreadStuck = errors.New("the spawning thread could not leave a container cgroup")

// runtimeGoexitLocked ends the calling goroutine while its thread is still
// locked, which makes Go end the thread too.
func runtimeGoexitLocked() {
	runtime.LockOSThread() // a second lock: the deferred unlock leaves one
}

func (r *Runtime) spawn(hostNet bool) (*helper, error) {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil, errors.New("runtime closed")
	}
	r.spawning.Add(1)
	r.mu.Unlock()
	defer r.spawning.Done()
	reply := make(chan spawnResult, 1)
	r.spawnCh <- spawnReq{hostNet: hostNet, reply: reply}
	res := <-reply
	return res.h, res.err
}

func (r *Runtime) doSpawn(hostNet bool) (*helper, error) {
	cg, err := r.cg.create(cgroupName())
	if err != nil {
		return nil, err
	}
	h, err := r.spawnInto(cg, hostNet)
	if err != nil {
		_ = cg.remove()
		return nil, err
	}
	return h, nil
}

func (r *Runtime) spawnInto(cg cgroup, hostNet bool) (*helper, error) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("socketpair: %w", err)
	}
	child := os.NewFile(uintptr(fds[1]), "init")
	defer child.Close()
	flags := uintptr(unix.CLONE_NEWNS | unix.CLONE_NEWPID | unix.CLONE_NEWUTS | unix.CLONE_NEWIPC)
	mode := nsinit.NetHost
	if !hostNet {
		flags |= unix.CLONE_NEWNET
		mode = nsinit.NetPrivate
	}
	sys := &syscall.SysProcAttr{Cloneflags: flags, Setsid: true, Pdeathsig: syscall.SIGKILL}
	cgfd, err := cg.dirFD()
	if err != nil {
		unix.Close(fds[0])
		return nil, err
	}
	if cgfd >= 0 {
		defer unix.Close(cgfd)
		sys.UseCgroupFD, sys.CgroupFD = true, cgfd
	} else {
		if err := r.cg.enterThread(cg); err != nil {
			unix.Close(fds[0])
			return nil, err
		}
	}
	proc, err := os.StartProcess("/proc/self/exe", []string{nsinit.Arg0}, &os.ProcAttr{
		Env:   helperEnv(mode, os.Getenv("GODEBUG")),
		Files: []*os.File{r.devnull, r.devnull, os.Stderr, child},
		Sys:   sys,
	})
	var stuck error
	if cgfd < 0 {
		if err := r.cg.leaveThread(); err != nil {
			stuck = fmt.Errorf("%w: %v", errThreadStuck, err)
		}
	}
	if err != nil {
		unix.Close(fds[0])
		return nil, errors.Join(fmt.Errorf("start container init: %w", err), stuck)
	}
	h := &helper{proc: proc, sock: fds[0], hostNet: hostNet, cg: cg}
	if stuck != nil {
		// Its parent thread is about to end, and with it (Pdeathsig) the
		// helper: do not hand it out.
		unix.Close(h.sock)
		_ = h.proc.Kill()
		_, _ = h.proc.Wait()
		return nil, stuck
	}
	return h, nil
}

// cgroupName names a helper's cgroup. It is not the container's ID: the
// cgroup exists before the container does (and v2 cannot rename cgroups).
func cgroupName() string {
	var b [12]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err) // crypto/rand does not fail on Linux
	}
	return "c" + hex.EncodeToString(b[:])
}

// removeStale kills and removes what earlier runs left under the parent.
func (r *Runtime) removeStale() error {
	names, err := r.cg.list()
	if err != nil {
		return err
	}
	var errs []error
	for _, n := range names {
		cg, ok, err := r.cg.load(n)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if !ok {
			continue
		}
		for i := 0; i < 200 && !cg.empty(); i++ {
			cg.killAll()
			sleepBackoff(i)
		}
		if err := cg.remove(); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func sleepBackoff(i int) {
	d := time.Duration(i+1) * 100 * time.Microsecond
	if d > 20*time.Millisecond {
		d = 20 * time.Millisecond
	}
	time.Sleep(d)
}

// helperEnv is the environment of a container's init, this same binary:
// its Go runtime only needs one P and never needs a GC, and it runs with
// the engine's GODEBUG (in the VM, what the driver chose for its CPU). The
// container's processes get their own environment, never this one.
func helperEnv(mode, godebug string) []string {
	env := []string{nsinit.Env + "=" + mode, "GOMAXPROCS=1", "GOGC=off"}
	if godebug != "" {
		env = append(env, "GODEBUG="+godebug)
	}
	return env
}
