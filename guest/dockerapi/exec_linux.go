package dockerapi

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/moby/moby/api/types/common"
	"github.com/moby/moby/api/types/container"

	"github.com/vmbox/vmbox/guest/api"
	"github.com/vmbox/vmbox/guest/engine"
)

var errNoSuchExec = errors.New("no such exec instance")

// execRecord is one exec instance: created, then started once; its exit
// code is kept for inspection after it ends, as Docker keeps it.
type execRecord struct {
	id        string
	container string
	args      api.ExecArgs
	attach    struct{ stdin, stdout, stderr bool }

	mu       sync.Mutex
	started  bool
	running  bool
	exitCode *int
	ended    time.Time
	resize   chan api.TermSize
}

// execTable holds the exec instances of all containers.
type execTable struct {
	mu    sync.Mutex
	execs map[string]*execRecord
}

func newExecTable() *execTable { return &execTable{execs: map[string]*execRecord{}} }

// execRetention is how long an ended exec stays inspectable.
const execRetention = 10 * time.Minute

func (t *execTable) add(e *execRecord) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for id, old := range t.execs {
		old.mu.Lock()
		stale := !old.ended.IsZero() && time.Since(old.ended) > execRetention
		old.mu.Unlock()
		if stale {
			delete(t.execs, id)
		}
	}
	t.execs[e.id] = e
}

func (t *execTable) get(id string) (*execRecord, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if e, ok := t.execs[id]; ok {
		return e, nil
	}
	return nil, fmt.Errorf("%w: No such exec instance: %s", errNoSuchExec, id)
}

// idsOf lists the container's exec instances.
func (t *execTable) idsOf(containerID string) []string {
	t.mu.Lock()
	defer t.mu.Unlock()
	var ids []string
	for id, e := range t.execs {
		if e.container == containerID {
			ids = append(ids, id)
		}
	}
	return ids
}

// forget drops a removed container's exec instances.
func (t *execTable) forget(containerID string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for id, e := range t.execs {
		if e.container == containerID {
			delete(t.execs, id)
		}
	}
}

func (s *Server) execCreate(w http.ResponseWriter, r *http.Request) error {
	var req container.ExecCreateRequest
	if err := decodeBody(r, &req); err != nil {
		return err
	}
	c, err := s.eng.Inspect(r.PathValue("id"))
	if err != nil {
		return err
	}
	if !c.State.Running {
		return &apiError{code: http.StatusConflict, msg: "container " + c.ID + " is not running"}
	}
	if c.State.Paused {
		return &apiError{code: http.StatusConflict, msg: "container " + c.ID + " is paused, unpause the container before exec"}
	}
	if len(req.Cmd) == 0 {
		return fmt.Errorf("%w: No exec command specified", errBadRequest)
	}
	b := make([]byte, 32)
	rand.Read(b)
	e := &execRecord{
		id:        hex.EncodeToString(b),
		container: c.ID,
		args: api.ExecArgs{
			Container: c.ID, Cmd: req.Cmd, Env: req.Env, WorkingDir: req.WorkingDir, User: req.User,
			Tty: req.Tty, OpenStdin: req.AttachStdin, Privileged: req.Privileged,
		},
		resize: make(chan api.TermSize, 1),
	}
	if req.ConsoleSize != nil {
		e.args.ConsoleSize = *req.ConsoleSize
	}
	e.attach.stdin, e.attach.stdout, e.attach.stderr = req.AttachStdin, req.AttachStdout, req.AttachStderr
	s.execs.add(e)
	return writeJSON(w, http.StatusCreated, common.IDResponse{ID: e.id})
}

func (s *Server) execStart(w http.ResponseWriter, r *http.Request) error {
	var req container.ExecStartRequest
	if err := decodeBody(r, &req); err != nil {
		return err
	}
	e, err := s.execs.get(r.PathValue("id"))
	if err != nil {
		return err
	}
	e.mu.Lock()
	if e.started {
		e.mu.Unlock()
		return &apiError{code: http.StatusConflict, msg: "exec " + e.id + " has already been started"}
	}
	e.started, e.running = true, true
	if req.ConsoleSize != nil {
		e.args.ConsoleSize = *req.ConsoleSize
	}
	args := e.args
	e.mu.Unlock()
	finish := func(code int) {
		e.mu.Lock()
		e.running, e.exitCode, e.ended = false, &code, time.Now()
		e.mu.Unlock()
	}
	if req.Detach {
		args.OpenStdin = false
		go func() {
			code, err := s.eng.Exec(contextWithoutCancel(r), args, engine.Streams{Resize: e.resize})
			if err != nil {
				s.log.Debug("exec", "id", e.id, "err", err)
			}
			finish(code)
		}()
		w.WriteHeader(http.StatusOK)
		return nil
	}
	hj, err := hijack(w, r, streamType(args.Tty))
	if err != nil {
		finish(api.ExitEngineError)
		return nil
	}
	defer hj.Close()
	stdout, stderr := outputWriters(hj, args.Tty)
	st := engine.Streams{Resize: e.resize}
	if e.attach.stdout {
		st.Stdout = stdout
	}
	if e.attach.stderr {
		st.Stderr = stderr
	}
	if e.attach.stdin {
		st.Stdin = hj
	}
	code, err := s.eng.Exec(r.Context(), args, st)
	if err != nil {
		// As Docker: the reason goes to the client's output, the code to
		// exec inspect.
		fmt.Fprintf(stderr, "OCI runtime exec failed: exec failed: unable to start container process: %s: unknown\r\n", errorMessage(err))
	}
	finish(code)
	hj.CloseWrite()
	return nil
}

func (s *Server) execResize(w http.ResponseWriter, r *http.Request) error {
	size, err := sizeParams(r)
	if err != nil {
		return err
	}
	e, err := s.execs.get(r.PathValue("id"))
	if err != nil {
		return err
	}
	select {
	case e.resize <- size:
	default:
		// A resize not yet taken is replaced by this newer one.
		select {
		case <-e.resize:
		default:
		}
		select {
		case e.resize <- size:
		default:
		}
	}
	w.WriteHeader(http.StatusOK)
	return nil
}

func (s *Server) execInspect(w http.ResponseWriter, r *http.Request) error {
	e, err := s.execs.get(r.PathValue("id"))
	if err != nil {
		return err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	priv := e.args.Privileged
	out := container.ExecInspectResponse{
		ID:          e.id,
		Running:     e.running,
		ExitCode:    e.exitCode,
		OpenStdin:   e.attach.stdin,
		OpenStdout:  e.attach.stdout,
		OpenStderr:  e.attach.stderr,
		ContainerID: e.container,
		ProcessConfig: &container.ExecProcessConfig{
			Tty: e.args.Tty, Entrypoint: e.args.Cmd[0], Arguments: nonNil(e.args.Cmd[1:]), Privileged: &priv, User: e.args.User,
		},
	}
	return writeJSON(w, http.StatusOK, out)
}
