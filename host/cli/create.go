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
			_, created, err := a.ensureInstance(o, cmd.Flags().Changed)
			if err != nil {
				return err
			}
			if !created {
				return &ExitError{Code: 1, Message: fmt.Sprintf("instance %q already exists", a.name)}
			}
			fmt.Fprintf(a.stdout, "Created instance %q\n", a.name)
			return nil
		},
	}
	addInstanceFlags(c, &o)
	return c
}
