package agent

import (
	"context"
	"net"

	"github.com/vmbox/vmbox/guest/dockerapi"
)

// serveDockerAPI serves the Docker Engine API with the open engine on l
// until ctx ends. l may have been listening for a while: clients that
// connected before the engine opened wait in its backlog.
func (a *Agent) serveDockerAPI(ctx context.Context, ops *containerOps, l net.Listener, dataDir string) {
	srv := dockerapi.New(dockerapi.Options{
		Engine:   ops.eng,
		Images:   ops.images,
		Version:  a.version(),
		DataRoot: dataDir,
		Log:      a.Log,
	})
	a.Log.Info("docker api serving", "socket", l.Addr().String())
	go func() {
		if err := srv.Serve(ctx, l); err != nil {
			a.Log.Error("docker api", "err", err)
		}
	}()
}
