package agent

import (
	"context"
	"fmt"

	"github.com/vmbox/vmbox/guest/dockerapi"
)

// serveDockerAPI serves the Docker Engine API with the open engine on a
// Unix socket at path until ctx ends.
func (a *Agent) serveDockerAPI(ctx context.Context, ops *containerOps, path, dataDir string) error {
	l, err := listenUnix(path)
	if err != nil {
		return fmt.Errorf("docker api socket: %w", err)
	}
	srv := dockerapi.New(dockerapi.Options{
		Engine:   ops.eng,
		Images:   ops.images,
		Version:  a.version(),
		DataRoot: dataDir,
		Log:      a.Log,
	})
	a.Log.Info("docker api serving", "socket", path)
	go func() {
		if err := srv.Serve(ctx, l); err != nil {
			a.Log.Error("docker api", "err", err)
		}
	}()
	return nil
}
