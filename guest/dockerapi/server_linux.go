package dockerapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/moby/moby/api/types/common"

	"github.com/vmbox/vmbox/guest/api"
	"github.com/vmbox/vmbox/guest/engine"
	"github.com/vmbox/vmbox/guest/image"
)

// The API versions served. The docker CLI speaks min(server, its own):
// 1.50 for the 28.x CLI, 1.41 for Debian's 20.10 CLI and docker-py 5.
const (
	APIVersion    = "1.50"
	MinAPIVersion = "1.24"
)

// Options configure a Server.
type Options struct {
	Engine *engine.Engine
	Images *image.Store
	// Version describes the agent (the "Engine" component of /version).
	Version api.Version
	// DataRoot is where the engine keeps its state (info's DockerRootDir).
	DataRoot string
	// InsecureRegistries may be pulled from over plain HTTP.
	InsecureRegistries []string
	Log                *slog.Logger
}

// Server answers the Docker Engine API.
type Server struct {
	opts  Options
	eng   *engine.Engine
	imgs  *image.Store
	log   *slog.Logger
	mux   *http.ServeMux
	execs *execTable
	// start is when the server began: info's SystemTime is now, this is
	// for events' since.
	start time.Time
}

// New makes a server for the engine and image store in opts.
func New(opts Options) *Server {
	log := opts.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Server{opts: opts, eng: opts.Engine, imgs: opts.Images, log: log, mux: http.NewServeMux(), execs: newExecTable(), start: time.Now()}
	s.routes()
	return s
}

// handlerFunc serves one endpoint; a returned error becomes Docker's JSON
// error answer when nothing has been written yet.
type handlerFunc func(w http.ResponseWriter, r *http.Request) error

func (s *Server) handle(pattern string, h handlerFunc) {
	s.mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
		if err := h(w, r); err != nil && !errors.Is(err, errWritten) {
			s.writeError(w, r, err)
		}
	})
}

func (s *Server) routes() {
	s.handle("GET /_ping", s.ping)
	s.handle("GET /version", s.version)
	s.handle("GET /info", s.info)
	s.handle("GET /system/df", s.systemDF)
	s.handle("GET /events", s.eventsStream)

	s.handle("POST /containers/create", s.containerCreate)
	s.handle("GET /containers/json", s.containerList)
	s.handle("POST /containers/prune", s.containerPrune)
	s.handle("GET /containers/{id}/json", s.containerInspect)
	s.handle("POST /containers/{id}/start", s.containerStart)
	s.handle("POST /containers/{id}/stop", s.containerStop)
	s.handle("POST /containers/{id}/restart", s.containerRestart)
	s.handle("POST /containers/{id}/kill", s.containerKill)
	s.handle("POST /containers/{id}/wait", s.containerWait)
	s.handle("POST /containers/{id}/attach", s.containerAttach)
	s.handle("GET /containers/{id}/logs", s.containerLogs)
	s.handle("GET /containers/{id}/stats", s.containerStats)
	s.handle("GET /containers/{id}/top", s.containerTop)
	s.handle("POST /containers/{id}/rename", s.containerRename)
	s.handle("POST /containers/{id}/pause", s.containerPause)
	s.handle("POST /containers/{id}/unpause", s.containerUnpause)
	s.handle("HEAD /containers/{id}/archive", s.archiveHead)
	s.handle("GET /containers/{id}/archive", s.archiveGet)
	s.handle("PUT /containers/{id}/archive", s.archivePut)
	s.handle("POST /containers/{id}/resize", s.containerResize)
	s.handle("DELETE /containers/{id}", s.containerDelete)
	s.handle("POST /containers/{id}/exec", s.execCreate)
	s.handle("POST /exec/{id}/start", s.execStart)
	s.handle("POST /exec/{id}/resize", s.execResize)
	s.handle("GET /exec/{id}/json", s.execInspect)

	s.handle("POST /commit", s.imageCommit)
	s.handle("POST /auth", s.auth)
	s.handle("POST /build", s.imageBuild)
	s.handle("POST /build/prune", s.buildPrune)
	s.handle("GET /images/json", s.imageList)
	s.handle("POST /images/create", s.imageCreate)
	s.handle("POST /images/load", s.imageLoad)
	s.handle("GET /images/get", s.imageGet)
	s.handle("POST /images/prune", s.imagePrune)
	s.handle("GET /images/{name...}", s.imageGetByName)
	s.handle("POST /images/{name...}", s.imagePostByName)
	s.handle("DELETE /images/{name...}", s.imageDelete)

	s.handle("GET /volumes", s.volumeList)
	s.handle("POST /volumes/create", s.volumeCreate)
	s.handle("POST /volumes/prune", s.volumePrune)
	s.handle("GET /volumes/{name}", s.volumeInspect)
	s.handle("DELETE /volumes/{name}", s.volumeDelete)

	s.handle("GET /networks", s.networkList)
	s.handle("POST /networks/create", s.networkCreate)
	s.handle("POST /networks/prune", s.networkPrune)
	s.handle("GET /networks/{id}", s.networkInspect)
	s.handle("DELETE /networks/{id}", s.networkDelete)
	s.handle("POST /networks/{id}/connect", s.networkConnect)
	s.handle("POST /networks/{id}/disconnect", s.networkDisconnect)

	s.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		s.writeError(w, r, fmt.Errorf("%w: %s %s is not implemented by vmbox", errNotImplemented, r.Method, r.URL.Path))
	})
}

// ServeHTTP strips and checks the API version prefix (/v1.43/...), then
// serves the unversioned path, as Docker does.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Api-Version", APIVersion)
	h.Set("Docker-Experimental", "false")
	h.Set("Ostype", "linux")
	h.Set("Server", "vmbox/"+s.opts.Version.Version+" (linux)")
	if rest, ok := strings.CutPrefix(r.URL.Path, "/v"); ok {
		if v, path, ok := strings.Cut(rest, "/"); ok && versionLike(v) {
			if err := checkVersion(v); err != nil {
				s.writeError(w, r, err)
				return
			}
			r2 := r.Clone(r.Context())
			r2.URL.Path = "/" + path
			r2.URL.RawPath = ""
			r = r2
		}
	}
	s.mux.ServeHTTP(w, r)
}

func versionLike(v string) bool {
	major, minor, ok := strings.Cut(v, ".")
	if !ok {
		return false
	}
	_, err1 := strconv.Atoi(major)
	_, err2 := strconv.Atoi(minor)
	return err1 == nil && err2 == nil
}

// compareVersions compares "1.41"-style versions.
func compareVersions(a, b string) int {
	am, an, _ := strings.Cut(a, ".")
	bm, bn, _ := strings.Cut(b, ".")
	ai, _ := strconv.Atoi(am)
	bi, _ := strconv.Atoi(bm)
	if ai != bi {
		return ai - bi
	}
	ai, _ = strconv.Atoi(an)
	bi, _ = strconv.Atoi(bn)
	return ai - bi
}

func checkVersion(v string) error {
	if compareVersions(v, APIVersion) > 0 {
		return fmt.Errorf("%w: client version %s is too new. Maximum supported API version is %s", errBadRequest, v, APIVersion)
	}
	if compareVersions(v, MinAPIVersion) < 0 {
		return fmt.Errorf("%w: client version %s is too old. Minimum supported API version is %s, please upgrade your client to a newer version", errBadRequest, v, MinAPIVersion)
	}
	return nil
}

// Serve answers connections on l until ctx ends. Connections being
// served (attached streams, followed logs) are closed with it.
func (s *Server) Serve(ctx context.Context, l net.Listener) error {
	srv := &http.Server{
		Handler:           s,
		BaseContext:       func(net.Listener) context.Context { return ctx },
		ReadHeaderTimeout: time.Minute,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
	}
	stop := context.AfterFunc(ctx, func() { srv.Close() })
	defer stop()
	err := srv.Serve(l)
	if ctx.Err() != nil {
		return nil
	}
	return err
}

// Errors of the API layer itself, with their status codes.
var (
	errBadRequest     = errors.New("bad request")
	errNotImplemented = errors.New("not implemented")
	errNotModified    = errors.New("not modified")
	// errWritten reports a failure after the answer began: nothing more
	// can be said to the client.
	errWritten = errors.New("answer already begun")
)

// apiError is an answer with its own status code and message.
type apiError struct {
	code int
	msg  string
}

func (e *apiError) Error() string { return e.msg }

// statusOf maps an error to Docker's status code for it.
func statusOf(err error) int {
	var ae *apiError
	if errors.As(err, &ae) {
		return ae.code
	}
	switch {
	case errors.Is(err, errNotModified):
		return http.StatusNotModified
	case errors.Is(err, errBadRequest), errors.Is(err, engine.ErrInvalid):
		return http.StatusBadRequest
	case errors.Is(err, errNotImplemented):
		return http.StatusNotImplemented
	case errors.Is(err, engine.ErrNoSuchContainer), errors.Is(err, engine.ErrNotFound), errors.Is(err, image.ErrNotFound), errors.Is(err, errNoSuchExec), errors.Is(err, engine.ErrNoSuchVolume):
		return http.StatusNotFound
	case errors.Is(err, engine.ErrConflict), errors.Is(err, engine.ErrNotRunning), errors.Is(err, image.ErrConflict):
		return http.StatusConflict
	case errors.Is(err, engine.ErrForbidden):
		return http.StatusForbidden
	}
	return http.StatusInternalServerError
}

// writeError answers with Docker's error body: {"message": "..."}, with
// the layer's own prefixes ("bad request: ") left out.
func (s *Server) writeError(w http.ResponseWriter, r *http.Request, err error) {
	code := statusOf(err)
	msg := errorMessage(err)
	if code >= 500 {
		s.log.Warn("docker api", "method", r.Method, "path", r.URL.Path, "err", msg)
	}
	if code == http.StatusNotModified {
		w.WriteHeader(code)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(common.ErrorResponse{Message: msg})
}

// errorMessage is err's text without the sentinel prefixes that only
// choose the status code.
func errorMessage(err error) string {
	msg := strings.ReplaceAll(strings.TrimSpace(err.Error()), "\n", " ")
	var ae *apiError
	if errors.As(err, &ae) {
		return ae.msg
	}
	// Docker's capitals: the CLI prints these as they come.
	for _, p := range []string{"no such container", "no such image"} {
		if rest, ok := strings.CutPrefix(msg, p); ok {
			msg = strings.ToUpper(p[:1]) + p[1:] + rest
		}
	}
	for _, p := range []error{errBadRequest, errNotImplemented, engine.ErrInvalid, engine.ErrForbidden} {
		msg = strings.TrimPrefix(msg, p.Error()+": ")
	}
	return msg
}

// writeJSON answers with v.
func writeJSON(w http.ResponseWriter, code int, v any) error {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	return jsonEncode(w, v)
}

// jsonEncode writes v once the status is out: a failure then can only be
// the client's, and is not answered.
func jsonEncode(w io.Writer, v any) error {
	if err := json.NewEncoder(w).Encode(v); err != nil {
		return errWritten
	}
	return nil
}

// decodeBody reads the request's JSON body into v; an empty body leaves v
// as it is.
func decodeBody(r *http.Request, v any) error {
	if r.Body == nil || r.ContentLength == 0 {
		return nil
	}
	if err := json.NewDecoder(r.Body).Decode(v); err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("%w: invalid JSON body: %w", errBadRequest, err)
	}
	return nil
}

// boolParam reads a query flag as Docker does: "", "0", "no", "false" and
// "none" are false, anything else true.
func boolParam(r *http.Request, name string) bool {
	switch strings.ToLower(strings.TrimSpace(r.URL.Query().Get(name))) {
	case "", "0", "no", "false", "none":
		return false
	}
	return true
}

// contextWithoutCancel is the request's context for work that outlives
// the request (a detached exec): its values, not its end.
func contextWithoutCancel(r *http.Request) context.Context {
	return context.WithoutCancel(r.Context())
}
