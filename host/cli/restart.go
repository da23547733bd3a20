package cli

import (
	"context"
	"fmt"
	"time"

	"github.com/spf13/cobra"
)

func (a *app) restartCommand() *cobra.Command {
	var o startOptions
	var stopTimeout time.Duration
	c := &cobra.Command{
		Use:   "restart [flags]",
		Short: "Stop the VM if it runs, then start it",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := o.settings(cmd.Flags().Changed)
			if err != nil {
				return err
			}
			m, inst, err := a.managedInstance()
			if err != nil {
				return err
			}
			if err := m.Reconfigure(inst, s); err != nil {
				return err
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), o.timeout+stopTimeout)
			defer cancel()
			p := newProgress(a.stderr, fmt.Sprintf("Restarting instance %q", a.name))
			defer p.done()
			bi, err := m.Restart(ctx, inst, stopTimeout, a.log(), p.update)
			if err != nil {
				p.fail()
				return err
			}
			p.finish(readyLine(a.name, bi))
			a.ensureDockerContext(inst)
			return nil
		},
	}
	addInstanceFlags(c, &o)
	c.Flags().DurationVar(&o.timeout, "timeout", defaultStartTimeout, "how long to wait for the guest to answer")
	c.Flags().DurationVar(&stopTimeout, "stop-timeout", 10*time.Second, "how long to wait for a graceful shutdown")
	return c
}
