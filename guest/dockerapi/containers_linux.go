package dockerapi

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/moby/moby/api/types/container"

	"github.com/vmbox/vmbox/guest/api"
	gcontainer "github.com/vmbox/vmbox/guest/container"
	"github.com/vmbox/vmbox/guest/engine"
	"github.com/vmbox/vmbox/guest/image"
)

func (s *Server) containerCreate(w http.ResponseWriter, r *http.Request) error {
	var req container.CreateRequest
	if err := decodeBody(r, &req); err != nil {
		return err
	}
	cfg, err := createConfig(r.URL.Query().Get("name"), req)
	if err != nil {
		return fmt.Errorf("%w: %w", errBadRequest, err)
	}
	if p := r.URL.Query().Get("platform"); p != "" {
		cfg.Platform = p
	}
	reply, err := s.eng.Create(r.Context(), cfg, engine.PullOptions{})
	if errors.Is(err, image.ErrNotFound) {
		// The docker CLI pulls on exactly this answer.
		return &apiError{code: http.StatusNotFound, msg: "No such image: " + withTag(cfg.Image)}
	}
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusCreated, container.CreateResponse{ID: reply.ID, Warnings: nonNil(reply.Warnings)})
}

// withTag spells a reference as Docker's messages do: with ":latest" when
// it names neither a tag nor a digest.
func withTag(ref string) string {
	if strings.Contains(ref, "@") {
		return ref
	}
	if i := strings.LastIndex(ref, ":"); i > strings.LastIndex(ref, "/") {
		return ref
	}
	return ref + ":latest"
}

func (s *Server) containerList(w http.ResponseWriter, r *http.Request) error {
	filters, err := parseFilters(r.URL.Query().Get("filters"))
	if err != nil {
		return err
	}
	if err := filters.Validate(api.ContainerFilterKeys()...); err != nil {
		return fmt.Errorf("%w: %w", errBadRequest, err)
	}
	rows, err := s.eng.List(api.PsArgs{All: boolParam(r, "all"), Filters: filters})
	if err != nil {
		return err
	}
	if n, err := strconv.Atoi(r.URL.Query().Get("limit")); err == nil && n > 0 && n < len(rows) {
		rows = rows[:n]
	}
	out := make([]container.Summary, 0, len(rows))
	for _, c := range rows {
		out = append(out, summary(c))
	}
	return writeJSON(w, http.StatusOK, out)
}

func (s *Server) containerInspect(w http.ResponseWriter, r *http.Request) error {
	c, err := s.eng.Inspect(r.PathValue("id"))
	if err != nil {
		return err
	}
	out := inspectResponse(c)
	out.ExecIDs = s.execs.idsOf(c.ID)
	return writeJSON(w, http.StatusOK, out)
}

func (s *Server) containerStart(w http.ResponseWriter, r *http.Request) error {
	id := r.PathValue("id")
	c, err := s.eng.Inspect(id)
	if err != nil {
		return err
	}
	if c.State.Running {
		return errNotModified
	}
	if err := s.eng.Start(r.Context(), id); err != nil {
		var se *gcontainer.StartError
		if errors.As(err, &se) {
			// The CLI picks its exit code (126, 127) from this message.
			return &apiError{code: http.StatusBadRequest, msg: "failed to create task for container: failed to create shim task: OCI runtime create failed: " + se.Msg + ": unknown"}
		}
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// stopTimeout reads the t (or timeout) parameter: seconds, negative for
// no limit, absent for the default 10.
func stopTimeout(r *http.Request) (time.Duration, error) {
	v := r.URL.Query().Get("t")
	if v == "" {
		v = r.URL.Query().Get("timeout")
	}
	if v == "" {
		return 10 * time.Second, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		return 0, fmt.Errorf("%w: invalid value for t: %q", errBadRequest, v)
	}
	if n < 0 {
		return time.Duration(math.MaxInt64), nil
	}
	return time.Duration(n) * time.Second, nil
}

func (s *Server) containerStop(w http.ResponseWriter, r *http.Request) error {
	timeout, err := stopTimeout(r)
	if err != nil {
		return err
	}
	if err := s.eng.Stop(r.Context(), r.PathValue("id"), timeout); err != nil {
		if errors.Is(err, engine.ErrNotRunning) {
			return errNotModified
		}
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (s *Server) containerRestart(w http.ResponseWriter, r *http.Request) error {
	timeout, err := stopTimeout(r)
	if err != nil {
		return err
	}
	id := r.PathValue("id")
	if err := s.eng.Stop(r.Context(), id, timeout); err != nil && !errors.Is(err, engine.ErrNotRunning) {
		return err
	}
	if err := s.eng.Start(r.Context(), id); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (s *Server) containerKill(w http.ResponseWriter, r *http.Request) error {
	id := r.PathValue("id")
	if err := s.eng.Kill(r.Context(), id, r.URL.Query().Get("signal")); err != nil {
		if errors.Is(err, engine.ErrNotRunning) {
			return &apiError{code: http.StatusConflict, msg: "Cannot kill container: " + id + ": Container " + id + " is not running"}
		}
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// containerWait answers as soon as the wait is registered (the docker CLI
// starts the container only once it has the headers) and sends the body
// when the condition is met.
func (s *Server) containerWait(w http.ResponseWriter, r *http.Request) error {
	ch, err := s.eng.WaitChan(r.Context(), r.PathValue("id"), r.URL.Query().Get("condition"))
	if err != nil {
		return err
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	if f, ok := w.(http.Flusher); ok {
		f.Flush()
	}
	reply, ok := <-ch
	if !ok {
		return nil // the client went away
	}
	resp := container.WaitResponse{StatusCode: int64(reply.StatusCode)}
	if reply.Error != "" {
		resp.Error = &container.WaitExitError{Message: reply.Error}
	}
	return jsonEncode(w, resp)
}

// containerAttach serves the hijacked attach stream. The attachment is
// registered before the upgrade is answered, so that a start the client
// sends next loses no output.
func (s *Server) containerAttach(w http.ResponseWriter, r *http.Request) error {
	id := r.PathValue("id")
	c, err := s.eng.Inspect(id)
	if err != nil {
		return err
	}
	tty := c.Config.Tty
	conn := newLateConn()
	defer conn.fail()
	stdout, stderr := outputWriters(conn, tty)
	st := engine.Streams{}
	if boolParam(r, "stdout") {
		st.Stdout = stdout
	}
	if boolParam(r, "stderr") {
		st.Stderr = stderr
	}
	if boolParam(r, "stdin") {
		st.Stdin = conn
	}
	if boolParam(r, "logs") {
		if !boolParam(r, "stream") {
			hj, err := hijack(w, r, streamType(tty))
			if err != nil {
				return nil
			}
			defer hj.Close()
			conn.set(hj)
			return s.eng.Logs(r.Context(), api.LogsArgs{Container: c.ID, Tail: -1}, st.Stdout, st.Stderr)
		}
	}
	if !boolParam(r, "stream") {
		return fmt.Errorf("%w: attach needs stream=1 or logs=1", errBadRequest)
	}
	serve, err := s.eng.AttachNow(c.ID, st)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	hj, err := hijack(w, r, streamType(tty))
	if err != nil {
		go serve(ctx) // ends at once: ctx is cancelled on return
		return nil
	}
	defer hj.Close()
	conn.set(hj)
	if boolParam(r, "logs") {
		s.eng.Logs(ctx, api.LogsArgs{Container: c.ID, Tail: -1}, st.Stdout, st.Stderr)
	}
	if err := serve(ctx); err != nil {
		s.log.Debug("attach", "container", c.ID, "err", err)
	}
	hj.CloseWrite()
	return nil
}

func (s *Server) containerLogs(w http.ResponseWriter, r *http.Request) error {
	id := r.PathValue("id")
	c, err := s.eng.Inspect(id)
	if err != nil {
		return err
	}
	wantOut, wantErr := boolParam(r, "stdout"), boolParam(r, "stderr")
	if !wantOut && !wantErr {
		return fmt.Errorf("%w: Bad parameters: you must choose at least one stream", errBadRequest)
	}
	args := api.LogsArgs{Container: c.ID, Follow: boolParam(r, "follow"), Timestamps: boolParam(r, "timestamps"), Tail: -1}
	if t := r.URL.Query().Get("tail"); t != "" && t != "all" {
		n, err := strconv.Atoi(t)
		if err != nil {
			return fmt.Errorf("%w: invalid value for tail: %q", errBadRequest, t)
		}
		if n >= 0 {
			args.Tail = n
		}
	}
	if args.Since, err = unixParam(r, "since"); err != nil {
		return err
	}
	if args.Until, err = unixParam(r, "until"); err != nil {
		return err
	}
	w.Header().Set("Content-Type", streamType(c.Config.Tty))
	w.WriteHeader(http.StatusOK)
	out := &lockedFlusher{w: flushing(w)}
	stdout, stderr := outputWriters(out, c.Config.Tty)
	if !wantOut {
		stdout = nil
	}
	if !wantErr {
		stderr = nil
	}
	if f, ok := w.(http.Flusher); ok {
		f.Flush()
	}
	if err := s.eng.Logs(r.Context(), args, stdout, stderr); err != nil && r.Context().Err() == nil {
		s.log.Debug("logs", "container", c.ID, "err", err)
	}
	return nil
}

// unixParam reads a time given as Unix seconds with an optional fraction
// ("1700000000.123456789"), as since and until are.
func unixParam(r *http.Request, name string) (time.Time, error) {
	v := r.URL.Query().Get(name)
	if v == "" || v == "0" {
		return time.Time{}, nil
	}
	secs, frac, _ := strings.Cut(v, ".")
	sec, err := strconv.ParseInt(secs, 10, 64)
	if err != nil {
		return time.Time{}, fmt.Errorf("%w: invalid value for %s: %q", errBadRequest, name, v)
	}
	var nsec int64
	if frac != "" {
		frac = (frac + "000000000")[:9]
		if nsec, err = strconv.ParseInt(frac, 10, 64); err != nil {
			return time.Time{}, fmt.Errorf("%w: invalid value for %s: %q", errBadRequest, name, v)
		}
	}
	return time.Unix(sec, nsec), nil
}

func (s *Server) containerResize(w http.ResponseWriter, r *http.Request) error {
	size, err := sizeParams(r)
	if err != nil {
		return err
	}
	if err := s.eng.Resize(r.PathValue("id"), size); err != nil {
		return err
	}
	w.WriteHeader(http.StatusOK)
	return nil
}

func sizeParams(r *http.Request) (api.TermSize, error) {
	h, err1 := strconv.ParseUint(r.URL.Query().Get("h"), 10, 16)
	wd, err2 := strconv.ParseUint(r.URL.Query().Get("w"), 10, 16)
	if err1 != nil || err2 != nil {
		return api.TermSize{}, fmt.Errorf("%w: h and w must be terminal sizes", errBadRequest)
	}
	return api.TermSize{Rows: uint16(h), Cols: uint16(wd)}, nil
}

func (s *Server) containerDelete(w http.ResponseWriter, r *http.Request) error {
	id := r.PathValue("id")
	c, err := s.eng.Inspect(id)
	if err != nil {
		return err
	}
	if err := s.eng.RemoveWith(r.Context(), c.ID, engine.RemoveOptions{Force: boolParam(r, "force"), Volumes: boolParam(r, "v")}); err != nil {
		return err
	}
	s.execs.forget(c.ID)
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (s *Server) containerPrune(w http.ResponseWriter, r *http.Request) error {
	filters, err := parseFilters(r.URL.Query().Get("filters"))
	if err != nil {
		return err
	}
	if err := filters.Validate("label", "until"); err != nil {
		return fmt.Errorf("%w: %w", errBadRequest, err)
	}
	until, err := untilFilter(filters)
	if err != nil {
		return err
	}
	rows, err := s.eng.List(api.PsArgs{All: true})
	if err != nil {
		return err
	}
	report := container.PruneReport{ContainersDeleted: []string{}}
	for _, c := range rows {
		if c.State == "running" || c.State == "restarting" || c.State == "paused" {
			continue
		}
		if !matchLabelFilters(c.Labels, filters) || !until.IsZero() && time.Unix(c.Created, 0).After(until) {
			continue
		}
		if err := s.eng.Remove(r.Context(), c.ID, false); err != nil {
			s.log.Debug("prune", "container", c.ID, "err", err)
			continue
		}
		report.ContainersDeleted = append(report.ContainersDeleted, c.ID)
	}
	return writeJSON(w, http.StatusOK, report)
}

// lateConn stands for a hijacked connection that does not exist yet when
// the engine is given the streams: writes and reads wait for set (or fail
// after fail).
type lateConn struct {
	ready chan struct{}
	once  sync.Once
	conn  io.ReadWriter
}

func newLateConn() *lateConn { return &lateConn{ready: make(chan struct{})} }

func (l *lateConn) set(c io.ReadWriter) {
	l.once.Do(func() {
		l.conn = c
		close(l.ready)
	})
}

// fail makes every later use fail (and does nothing after set).
func (l *lateConn) fail() { l.set(nil) }

func (l *lateConn) Write(p []byte) (int, error) {
	<-l.ready
	if l.conn == nil {
		return 0, io.ErrClosedPipe
	}
	return l.conn.Write(p)
}

func (l *lateConn) Read(p []byte) (int, error) {
	<-l.ready
	if l.conn == nil {
		return 0, io.EOF
	}
	return l.conn.Read(p)
}

// lockedFlusher serializes writers of one response (stdout and stderr of
// a terminal both write to it).
type lockedFlusher struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedFlusher) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func (s *Server) containerRename(w http.ResponseWriter, r *http.Request) error {
	name := r.URL.Query().Get("name")
	if name == "" {
		return fmt.Errorf("%w: the new name (name parameter) is required", errBadRequest)
	}
	if err := s.eng.Rename(r.PathValue("id"), name); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (s *Server) containerPause(w http.ResponseWriter, r *http.Request) error {
	if err := s.eng.Pause(r.PathValue("id")); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (s *Server) containerUnpause(w http.ResponseWriter, r *http.Request) error {
	if err := s.eng.Unpause(r.PathValue("id")); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}
