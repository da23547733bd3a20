package cli

import (
	"context"
	"fmt"
	"io"
	"runtime"
	"time"

	"github.com/spf13/cobra"

	"github.com/vmbox/vmbox/guest/api"
	"github.com/vmbox/vmbox/internal/version"
)

type clientVersion struct {
	Version   string `json:"Version"`
	GoVersion string `json:"GoVersion"`
	GitCommit string `json:"GitCommit"`
	Built     string `json:"Built"`
	Os        string `json:"Os"`
	Arch      string `json:"Arch"`
	Context   string `json:"Context"`
}

type versionReport struct {
	Client clientVersion `json:"Client"`
	Server *api.Version  `json:"Server,omitempty"`
}

func (a *app) versionCommand() *cobra.Command {
	var out outputFlags
	c := &cobra.Command{
		Use:   "version [flags]",
		Short: "Show the client's and the guest engine's versions",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := out.check(); err != nil {
				return err
			}
			rep := versionReport{Client: clientVersion{
				Version: version.Version, GoVersion: version.GoVersion(), GitCommit: version.GitCommit,
				Built: version.BuildTime, Os: runtime.GOOS, Arch: runtime.GOARCH, Context: a.name,
			}}
			server, serr := a.serverVersion(cmd.Context())
			rep.Server = server
			if out.format == "json" {
				if err := writeJSON(a.stdout, rep); err != nil {
					return err
				}
			} else {
				a.printVersion(a.stdout, rep)
			}
			return serr
		},
	}
	addOutputFlags(c, &out, false)
	return c
}

func (a *app) serverVersion(ctx context.Context) (*api.Version, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	c, err := a.connect(ctx)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	var v api.Version
	if err := c.Call(ctx, api.OpVersion, nil, &v); err != nil {
		return nil, fmt.Errorf("ask the agent for its version: %w", err)
	}
	return &v, nil
}

func (a *app) printVersion(w io.Writer, r versionReport) {
	c := r.Client
	fmt.Fprintf(w, "Client:\n Version:      %s\n Go version:   %s\n Git commit:   %s\n Built:        %s\n OS/Arch:      %s/%s\n Context:      %s\n",
		c.Version, c.GoVersion, c.GitCommit, c.Built, c.Os, c.Arch, c.Context)
	if s := r.Server; s != nil {
		fmt.Fprintf(w, "\nServer: vmbox (%s)\n Engine:\n  Version:     %s\n  Go version:  %s\n  Git commit:  %s\n  Kernel:      %s\n  OS/Arch:     %s/%s\n",
			a.name, s.Version, s.GoVersion, s.GitCommit, s.KernelVersion, s.Os, s.Arch)
	}
}
