package instance

import (
	"path/filepath"
	"runtime"
	"strings"
)

// DockerPipe is the named pipe through which the host process serves the
// guest's Docker API on Windows, where Docker clients expect a pipe
// rather than a Unix socket. Pipe names are global to the machine, not to
// a store, hence the instance's name in it.
func (i *Instance) DockerPipe() string {
	return `\\.\pipe\vmbox-` + i.Config.Name + `-docker`
}

// DockerHost is the DOCKER_HOST value that reaches the guest's Docker API
// while the instance runs.
func (i *Instance) DockerHost() string { return i.dockerHost(runtime.GOOS) }

func (i *Instance) dockerHost(goos string) string {
	if goos == "windows" {
		// The docker CLI's form of \\.\pipe\NAME.
		return "npipe://" + strings.ReplaceAll(i.DockerPipe(), `\`, "/")
	}
	// A relative path would mean another socket from another directory.
	p := i.Path(DockerSocketFile)
	if abs, err := filepath.Abs(p); err == nil {
		p = abs
	}
	return "unix://" + p
}
