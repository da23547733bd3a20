package agent

import (
	"context"

	"github.com/vmbox/vmbox/guest/api"
)

// serveNetworkOp serves the network operations. Their failures exit 125,
// as a run refused for a network does: the engine refused the request.
func (o *containerOps) serveNetworkOp(ctx context.Context, s *Session) int {
	answer := func(args any, op func() (any, error)) int {
		if err := s.Request.Decode(args); err != nil {
			return fail(s, err)
		}
		v, err := op()
		if err != nil {
			return fail(s, err)
		}
		if v == nil {
			return 0
		}
		return reply(s, v)
	}
	switch s.Request.Op {
	case api.OpNetworkCreate:
		var args api.NetworkCreateArgs
		return answer(&args, func() (any, error) { return o.eng.NetworkCreate(ctx, args) })
	case api.OpNetworkList:
		return answer(&struct{}{}, func() (any, error) { return o.eng.NetworkList() })
	case api.OpNetworkInspect:
		var args api.NamesArgs
		return answer(&args, func() (any, error) {
			out := make([]api.NetworkResource, 0, len(args.Names))
			for _, n := range args.Names {
				r, err := o.eng.NetworkInspect(n)
				if err != nil {
					return nil, err
				}
				out = append(out, r)
			}
			return out, nil
		})
	case api.OpNetworkRemove:
		var args api.NamesArgs
		return answer(&args, func() (any, error) {
			for _, n := range args.Names {
				if err := o.eng.NetworkRemove(ctx, n); err != nil {
					return nil, err
				}
			}
			return nil, nil
		})
	case api.OpNetworkConnect:
		var args api.NetworkConnectArgs
		return answer(&args, func() (any, error) { return nil, o.eng.NetworkConnect(ctx, args) })
	case api.OpNetworkDisconnect:
		var args api.NetworkDisconnectArgs
		return answer(&args, func() (any, error) { return nil, o.eng.NetworkDisconnect(ctx, args) })
	case api.OpNetworkPrune:
		return answer(&struct{}{}, func() (any, error) { return o.eng.NetworkPrune(ctx) })
	}
	return fail(s, errUnknownOp(s.Request.Op))
}
