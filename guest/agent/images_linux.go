package agent

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/vmbox/vmbox/guest/api"
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
