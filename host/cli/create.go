package cli

import (
	"fmt"

	"github.com/spf13/cobra"
)

func (a *app) createCommand() *cobra.Command {
	var o startOptions
	c := &cobra.Command{
		Use:   "create [flags]",
		Short: "Create an instance without starting it",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := o.settings(cmd.Flags().Changed)
			if err != nil {
				return err
			}
			m, err := a.manager()
			if err != nil {
				return err
			}
			if _, err := m.Create(a.name, s); err != nil {
				return err
			}
			fmt.Fprintf(a.stdout, "Created instance %q\n", a.name)
			return nil
		},
	}
	addInstanceFlags(c, &o)
	return c
}
