package cli

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/vmbox/vmbox/host/instance"
)

func (a *app) deleteCommand() *cobra.Command {
	var timeout time.Duration
	c := &cobra.Command{
		Use:   "delete [flags]",
		Short: "Stop the instance and remove everything of it, data disk included",
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
			defer lock.Release()
			if _, err := a.stopInstance(cmd.Context(), inst, timeout); err != nil {
				return err
			}
			if err := inst.Delete(); err != nil {
				return err
			}
			fmt.Fprintf(a.stdout, "Deleted instance %q\n", a.name)
			return nil
		},
	}
	c.Flags().DurationVar(&timeout, "timeout", 30*time.Second, "how long to wait for a graceful shutdown before forcing it")
	return c
}
