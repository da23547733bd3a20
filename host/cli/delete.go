package cli

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"
)

func (a *app) deleteCommand() *cobra.Command {
	var timeout time.Duration
	c := &cobra.Command{
		Use:   "delete [flags]",
		Short: "Stop the instance and remove everything of it, data disk included",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			m, inst, err := a.managedInstance()
			if err != nil {
				return err
			}
			if err := m.Delete(cmd.Context(), inst, timeout, a.log()); err != nil {
				return err
			}
			a.removeDockerContext(inst)
			fmt.Fprintf(a.stdout, "Deleted instance %q\n", a.name)
			return nil
		},
	}
	c.Flags().DurationVar(&timeout, "timeout", 10*time.Second, "how long to wait for a graceful shutdown before forcing it")
	return c
}
