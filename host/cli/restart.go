package cli

import (
	"time"

	"github.com/spf13/cobra"

	"github.com/vmbox/vmbox/host/instance"
)

func (a *app) restartCommand() *cobra.Command {
	var o startOptions
	var stopTimeout time.Duration
	c := &cobra.Command{
		Use:   "restart [flags]",
		Short: "Stop the VM if it runs, then start it",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			inst, err := a.instance()
			if err != nil {
				return err
			}
			lock, err := instance.WaitLock(cmd.Context(), inst.Path(instance.StartLockFile))
			if err != nil {
				return err
			}
			_, err = a.stopInstance(cmd.Context(), inst, stopTimeout)
			lock.Release()
			if err != nil {
				return err
			}
			return a.startInstance(cmd.Context(), o, cmd.Flags().Changed)
		},
	}
	addInstanceFlags(c, &o)
	c.Flags().DurationVar(&o.timeout, "timeout", 5*time.Minute, "how long to wait for the guest to answer")
	c.Flags().DurationVar(&stopTimeout, "stop-timeout", 30*time.Second, "how long to wait for a graceful shutdown")
	return c
}
