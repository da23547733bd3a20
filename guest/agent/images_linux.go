package agent

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"

	units "github.com/docker/go-units"
	"golang.org/x/sys/unix"

	"github.com/vmbox/vmbox/guest/api"
	"github.com/vmbox/vmbox/guest/build"
	"github.com/vmbox/vmbox/guest/engine"
	"github.com/vmbox/vmbox/guest/image"
)

// serveImageOp serves the image operations. Pulls go through the engine,
// like the pulls of run and create, so that credentials and the pull
// policy are applied in one place; the others use the store directly.
func (o *containerOps) serveImageOp(ctx context.Context, s *Session) int {
	switch s.Request.Op {
	case api.OpPull:
		return o.pull(ctx, s)
	case api.OpPush:
		return o.push(ctx, s)
	case api.OpBuild:
		return o.build(ctx, s)
	case api.OpAuth:
		var args api.AuthArgs
		return o.answer(s, &args, func() (any, error) {
			return nil, image.CheckLogin(ctx, args.Server, args.Username, args.Password, args.InsecureRegistries)
		})
	case api.OpBuilderPrune:
		return o.answer(s, &struct{}{}, func() (any, error) {
			ids, size, err := o.images.PruneBuildCache(o.eng.InUse)
			return api.BuilderPruneReply{CachesDeleted: append([]string{}, ids...), SpaceReclaimed: uint64(size)}, err
		})
	case api.OpTag:
		var args api.TagArgs
		return o.answer(s, &args, func() (any, error) { return nil, o.images.Tag(args.Source, args.Target) })
	case api.OpImages:
		var args api.ImagesArgs
		return o.answer(s, &args, func() (any, error) { return o.images.List() })
	case api.OpRmi:
		var args api.RmiArgs
		return o.answer(s, &args, func() (any, error) { return o.images.Remove(args.Names, args.Force, o.eng.InUse) })
	case api.OpLoad:
		loaded, err := o.images.Load(s.Stdin)
		if err != nil {
			return failCode(s, 1, err)
		}
		return reply(s, api.LoadReply{Loaded: loaded})
	case api.OpSave:
		var args api.SaveArgs
		if err := s.Request.Decode(&args); err != nil {
			return fail(s, err)
		}
		if err := o.images.Save(s.Stdout, args.Names); err != nil {
			return failCode(s, 1, err)
		}
		return 0
	}
	return fail(s, fmt.Errorf("not an image operation: %q", s.Request.Op))
}

func (o *containerOps) pull(ctx context.Context, s *Session) int {
	var args api.PullArgs
	if err := s.Request.Decode(&args); err != nil {
		return fail(s, err)
	}
	enc := json.NewEncoder(s.Stdout)
	pull := engine.PullOptions{Auth: args.Auth, InsecureRegistries: args.InsecureRegistries, Progress: func(p api.PullProgress) { enc.Encode(p) }}
	if _, err := o.eng.Pull(ctx, args.Ref, args.Platform, pull); err != nil {
		enc.Encode(api.PullProgress{Error: oneLine(err)})
		return failCode(s, 1, err)
	}
	return 0
}

func (o *containerOps) push(ctx context.Context, s *Session) int {
	var args api.PullArgs
	if err := s.Request.Decode(&args); err != nil {
		return fail(s, err)
	}
	enc := json.NewEncoder(s.Stdout)
	opts := image.PullOptions{Auth: args.Auth, InsecureRegistries: args.InsecureRegistries}
	if _, err := o.images.Push(ctx, args.Ref, opts, func(p api.PullProgress) { enc.Encode(p) }); err != nil {
		enc.Encode(api.PullProgress{Error: oneLine(err)})
		return failCode(s, 1, err)
	}
	return 0
}

// build runs a build of the context on stdin. The output is the
// builder's text; the last line is the image ID. A failure exits 1.
func (o *containerOps) build(ctx context.Context, s *Session) int {
	var args api.BuildArgs
	if err := s.Request.Decode(&args); err != nil {
		return fail(s, err)
	}
	// On the data disk: the VM's /tmp is memory.
	tmp := filepath.Join(filepath.Dir(o.images.Root()), "build-tmp")
	if err := os.MkdirAll(tmp, 0o700); err != nil {
		return fail(s, err)
	}
	var st unix.Statfs_t
	if unix.Statfs(tmp, &st) == nil {
		if free := int64(st.Bavail) * st.Bsize; args.ContextSize > free {
			return failCode(s, 1, fmt.Errorf("the build context (%s) is larger than the VM's free disk space (%s)", units.HumanSize(float64(args.ContextSize)), units.HumanSize(float64(free))))
		}
	}
	dir, err := os.MkdirTemp(tmp, "context-")
	if err != nil {
		return fail(s, err)
	}
	defer os.RemoveAll(dir)
	if err := build.UnpackContext(s.Stdin, dir); err != nil {
		return failCode(s, 1, fmt.Errorf("build context: %w", err))
	}
	out := s.Stdout
	if args.Quiet {
		out = io.Discard
	}
	b := &build.Builder{Engine: o.eng, Images: o.images}
	id, err := b.Build(ctx, build.Options{
		Context: dir, Dockerfile: args.Dockerfile, Tags: args.Tags, BuildArgs: args.BuildArgs, Target: args.Target,
		Labels: args.Labels, Pull: args.Pull, NoCache: args.NoCache, PullOptions: engine.PullOptions{InsecureRegistries: args.InsecureRegistries},
		Auths: args.Auth,
	}, out)
	if err != nil {
		return failCode(s, 1, err)
	}
	fmt.Fprintln(s.Stdout, id)
	return 0
}
