package cli

import (
	"fmt"
	"runtime"

	"github.com/vmbox/vmbox/host/dockerctx"
	"github.com/vmbox/vmbox/host/instance"
)

// dockerContextName is the docker CLI context of an instance: "vmbox" for
// the default one, which most users have alone, "vmbox-NAME" for others.
func dockerContextName(name string) string {
	if name == instance.DefaultName {
		return "vmbox"
	}
	return "vmbox-" + name
}

// ensureDockerContext makes the instance's Docker API a docker CLI context
// the first time it starts, and says how to use it; the user's current
// context stays. A context of that name the user has is left alone. Any
// failure is a warning: the instance runs either way.
func (a *app) ensureDockerContext(inst *instance.Instance) {
	c := dockerctx.Context{
		Name:        dockerContextName(inst.Config.Name),
		Description: "vmbox instance " + inst.Config.Name,
		Host:        inst.DockerHost(),
	}
	dir, err := dockerctx.ConfigDir()
	if err != nil {
		fmt.Fprintf(a.stderr, "vmbox: warning: no docker context %q: %v\n", c.Name, err)
		return
	}
	created, host, err := dockerctx.Ensure(dir, c)
	switch {
	case err != nil:
		fmt.Fprintf(a.stderr, "vmbox: warning: no docker context %q: %v\n", c.Name, err)
	case created:
		fmt.Fprintf(a.stderr, "Docker API: docker --context %s ... (or docker context use %s, or %s)\n", c.Name, c.Name, setEnv("DOCKER_HOST", c.Host))
	case host != c.Host:
		if host == "" {
			host = "no Docker endpoint"
		}
		fmt.Fprintf(a.stderr, "vmbox: docker context %q already exists (%s), left alone; to reach this instance: %s\n", c.Name, host, setEnv("DOCKER_HOST", c.Host))
	}
}

// removeDockerContext takes out the docker CLI context the instance's
// starts added, once the instance is deleted: a context left behind would
// point at a socket that no longer exists. A context of the name with
// another endpoint is the user's and stays, and so does the current one
// (with a hint). Failures are warnings: the instance is gone either way.
func (a *app) removeDockerContext(inst *instance.Instance) {
	name := dockerContextName(inst.Config.Name)
	dir, err := dockerctx.ConfigDir()
	if err != nil {
		return
	}
	if _, err := dockerctx.Remove(dir, name, inst.DockerHost()); err != nil {
		fmt.Fprintf(a.stderr, "vmbox: warning: %v\n", err)
	}
}

// setEnv is the command that sets an environment variable in the user's
// likely shell.
func setEnv(name, value string) string {
	if runtime.GOOS == "windows" {
		return fmt.Sprintf("$env:%s=%q", name, value) // PowerShell
	}
	return "export " + name + "=" + value
}
