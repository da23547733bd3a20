package agent

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"syscall"
	"time"

	"github.com/vmbox/vmbox/guest/api"
	"github.com/vmbox/vmbox/guest/engine"
	"github.com/vmbox/vmbox/guest/image"
	"github.com/vmbox/vmbox/internal/signals"
)

// containerOps serves the container and image operations with the engine.
type containerOps struct {
	eng    *engine.Engine
	images *image.Store
	// ready is closed once eng and images are open (in the VM the data
	// disk may still be formatting when the first request arrives).
	ready   <-chan struct{}
	openErr *error
}

// settled is closed once the engine has opened (or failed to) and
// finished the work it starts at opening, such as its warm helper.
func (o *containerOps) settled() <-chan struct{} {
	done := make(chan struct{})
	go func() {
		defer close(done)
		<-o.ready
		if *o.openErr == nil && o.eng != nil {
			o.eng.Idle()
		}
	}()
	return done
}

// mountsChanged passes on that the VM's mounts changed, once the engine
// is open; one opened later starts from the new mounts anyway.
func (o *containerOps) mountsChanged() {
	select {
	case <-o.ready:
		if *o.openErr == nil && o.eng != nil {
			o.eng.MountsChanged()
		}
	default:
	}
}

// Serve implements Handler.
func (o *containerOps) Serve(ctx context.Context, s *Session) int {
	select {
	case <-o.ready:
	case <-ctx.Done():
		return api.ExitEngineError
	}
	if *o.openErr != nil {
		return fail(s, fmt.Errorf("the container engine is unavailable: %w", *o.openErr))
	}
	switch s.Request.Op {
	case api.OpRun:
		return o.run(ctx, s)
	case api.OpCreate:
		var args api.CreateArgs
		return o.answer(s, &args, func() (any, error) {
			return o.eng.Create(ctx, args.Config, engine.PullOptions{Progress: textProgress(s.Stderr, args.Config.Image)})
		})
	case api.OpStart:
		var args api.ContainerArgs
		return o.answer(s, &args, func() (any, error) { return nil, o.eng.Start(ctx, args.Container) })
	case api.OpAttach:
		var args api.ContainerArgs
		if err := s.Request.Decode(&args); err != nil {
			return fail(s, err)
		}
		if err := o.eng.Attach(ctx, args.Container, o.streams(ctx, s)); err != nil {
			return failCode(s, 1, err)
		}
		w, err := o.eng.Wait(ctx, args.Container, "")
		if err != nil {
			return failCode(s, 1, err)
		}
		return w.StatusCode
	case api.OpWait:
		var args api.ContainerArgs
		return o.answer(s, &args, func() (any, error) { return o.eng.Wait(ctx, args.Container, "") })
	case api.OpPs:
		var args api.PsArgs
		return o.answer(s, &args, func() (any, error) { return o.eng.List(args) })
	case api.OpLogs:
		var args api.LogsArgs
		if err := s.Request.Decode(&args); err != nil {
			return fail(s, err)
		}
		if err := o.eng.Logs(ctx, args, s.Stdout, s.Stderr); err != nil {
			return failCode(s, 1, err)
		}
		return 0
	case api.OpExec:
		var args api.ExecArgs
		if err := s.Request.Decode(&args); err != nil {
			return fail(s, err)
		}
		code, err := o.eng.Exec(ctx, args, o.streams(ctx, s))
		if err != nil {
			fmt.Fprintln(s.Stderr, oneLine(err))
		}
		return code
	case api.OpStop:
		var args api.StopArgs
		return o.answer(s, &args, func() (any, error) {
			timeout := 10 * time.Second
			if args.Timeout >= 0 {
				timeout = time.Duration(args.Timeout) * time.Second
			}
			return nil, o.eng.Stop(ctx, args.Container, timeout)
		})
	case api.OpKill:
		var args api.KillArgs
		return o.answer(s, &args, func() (any, error) { return nil, o.eng.Kill(ctx, args.Container, args.Signal) })
	case api.OpRm:
		var args api.RmArgs
		return o.answer(s, &args, func() (any, error) {
			return nil, o.eng.RemoveWith(ctx, args.Container, engine.RemoveOptions{Force: args.Force, Volumes: args.Volumes})
		})
	case api.OpResize:
		var args api.ResizeArgs
		return o.answer(s, &args, func() (any, error) {
			return nil, o.eng.Resize(args.Container, api.TermSize{Rows: uint16(args.Rows), Cols: uint16(args.Cols)})
		})
	case api.OpInspect:
		return o.inspect(s)
	case api.OpPull, api.OpImages, api.OpRmi, api.OpLoad, api.OpSave, api.OpTag, api.OpPush, api.OpBuild, api.OpBuilderPrune, api.OpAuth:
		return o.serveImageOp(ctx, s)
	case api.OpVolumeCreate:
		var args api.VolumeCreateArgs
		return o.answer(s, &args, func() (any, error) { return o.eng.VolumeCreate(args) })
	case api.OpVolumeList:
		var args api.VolumeListArgs
		return o.answer(s, &args, func() (any, error) { return o.eng.VolumeList(args.Filters) })
	case api.OpVolumeInspect:
		var args api.VolumeInspectArgs
		if err := s.Request.Decode(&args); err != nil {
			return fail(s, err)
		}
		out := []api.Volume{}
		var errs []string
		for _, n := range args.Names {
			v, err := o.eng.VolumeInspect(n)
			if err != nil {
				errs = append(errs, oneLine(err))
				continue
			}
			out = append(out, v)
		}
		reply(s, out)
		if len(errs) > 0 {
			fmt.Fprintln(s.Stderr, strings.Join(errs, "; "))
			return 1
		}
		return 0
	case api.OpVolumeRemove:
		var args api.VolumeRemoveArgs
		if err := s.Request.Decode(&args); err != nil {
			return fail(s, err)
		}
		code := 0
		for _, n := range args.Names {
			if err := o.eng.VolumeRemove(n, args.Force); err != nil {
				fmt.Fprintln(s.Stderr, oneLine(err))
				code = 1
				continue
			}
			fmt.Fprintln(s.Stdout, n)
		}
		return code
	case api.OpVolumePrune:
		var args api.VolumePruneArgs
		return o.answer(s, &args, func() (any, error) { return o.eng.VolumePrune(args.All, args.Filters) })
	case api.OpNetworkCreate, api.OpNetworkList, api.OpNetworkInspect, api.OpNetworkRemove,
		api.OpNetworkConnect, api.OpNetworkDisconnect, api.OpNetworkPrune:
		return o.serveNetworkOp(ctx, s)
	}
	return fail(s, errUnknownOp(s.Request.Op))
}

// answer decodes the arguments into args, runs op and writes its answer
// (if any) as JSON. Failures of management operations exit 1, as Docker's
// CLI does for daemon errors.
func (o *containerOps) answer(s *Session, args any, op func() (any, error)) int {
	if err := s.Request.Decode(args); err != nil {
		return fail(s, err)
	}
	v, err := op()
	if err != nil {
		return failCode(s, 1, err)
	}
	if v == nil {
		return 0
	}
	return reply(s, v)
}

func (o *containerOps) run(ctx context.Context, s *Session) int {
	var args api.RunArgs
	if err := s.Request.Decode(&args); err != nil {
		return fail(s, err)
	}
	res, err := o.eng.Run(ctx, args, o.streams(ctx, s), textProgress(s.Stderr, args.Config.Image))
	if err != nil {
		fmt.Fprintln(s.Stderr, "vmbox: "+oneLine(err))
		if res.ExitCode == 0 {
			res.ExitCode = api.ExitEngineError
		}
		return res.ExitCode
	}
	if args.Detach {
		fmt.Fprintln(s.Stdout, res.ID)
	}
	return res.ExitCode
}

func (o *containerOps) inspect(s *Session) int {
	var args api.InspectArgs
	if err := s.Request.Decode(&args); err != nil {
		return fail(s, err)
	}
	out := []any{}
	var missing []string
	for _, n := range args.Names {
		if args.Type != "image" {
			if c, err := o.eng.Inspect(n); err == nil {
				out = append(out, c)
				continue
			}
		}
		if args.Type != "container" {
			if im, err := o.images.Inspect(n); err == nil {
				out = append(out, im)
				continue
			}
		}
		missing = append(missing, n)
	}
	enc := json.NewEncoder(s.Stdout)
	enc.SetIndent("", "    ")
	enc.Encode(out)
	if len(missing) > 0 {
		what := "object"
		if args.Type != "" {
			what = args.Type
		}
		fmt.Fprintf(s.Stderr, "no such %s: %s\n", what, strings.Join(missing, ", "))
		return 1
	}
	return 0
}

// streams adapts a session's streams to the engine's.
func (o *containerOps) streams(ctx context.Context, s *Session) engine.Streams {
	resize := make(chan api.TermSize, 1)
	sigs := make(chan syscall.Signal, 4)
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case sz := <-s.Resize:
				select {
				case resize <- sz:
				default:
				}
			case name := <-s.Signals:
				if n, err := signals.Parse(name); err == nil {
					select {
					case sigs <- syscall.Signal(n):
					default:
					}
				}
			}
		}
	}()
	st := engine.Streams{Stdin: s.Stdin, Stdout: s.Stdout, Stderr: s.Stderr, Resize: resize, Signals: sigs}
	return st
}

// textProgress renders pull progress for commands whose output is a
// person's terminal (run, create): the status lines docker run prints.
func textProgress(w io.Writer, ref string) func(api.PullProgress) {
	announced := false
	return func(p api.PullProgress) {
		if !announced {
			fmt.Fprintf(w, "Unable to find image '%s' locally\n", ref)
			announced = true
		}
		switch {
		case p.Error != "":
			fmt.Fprintln(w, p.Error)
		case p.ID == "":
			fmt.Fprintln(w, p.Status)
		case p.Status == "Pull complete" || p.Status == "Already exists" || strings.HasPrefix(p.Status, "Pulling fs layer"):
			fmt.Fprintf(w, "%s: %s\n", p.ID, p.Status)
		}
	}
}

func errUnknownOp(op string) error { return fmt.Errorf("unknown operation %q", op) }

func oneLine(err error) string {
	return strings.ReplaceAll(strings.TrimSpace(err.Error()), "\n", " ")
}

// failCode reports an error with a chosen exit code.
func failCode(s *Session, code int, err error) int {
	fmt.Fprintln(s.Stderr, oneLine(err))
	return code
}
