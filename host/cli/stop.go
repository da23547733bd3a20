package cli

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"
)

func (a *app) stopCommand() *cobra.Command {
	var seconds int
	var timeout time.Duration
	c := &cobra.Command{
		Use:   "stop [-t SECONDS] [CONTAINER...]",
		Short: "Stop the VM (gracefully through the agent, then forcibly), or stop containers",
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) > 0 {
				return a.stopContainers(cmd.Context(), args, seconds)
			}
			if seconds < 0 {
				return badFlag("invalid -t %d: seconds cannot be negative", seconds)
			}
			if !cmd.Flags().Changed("timeout") {
				timeout = time.Duration(seconds) * time.Second
			}
			m, inst, err := a.managedInstance()
			if err != nil {
				return err
			}
			stopped, err := m.Stop(cmd.Context(), inst, timeout, a.log())
			if err != nil {
				return err
			}
			if stopped {
				fmt.Fprintf(a.stdout, "Stopped instance %q\n", a.name)
			} else {
				fmt.Fprintf(a.stdout, "instance %q is not running\n", a.name)
			}
			return nil
		},
	}
	c.Flags().IntVarP(&seconds, "time", "t", 10, "seconds to wait for a graceful stop before forcing it")
	c.Flags().DurationVar(&timeout, "timeout", 0, "VM: like -t, as a duration")
	c.Flags().MarkHidden("timeout")
	return c
}
