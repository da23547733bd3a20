package cli

import (
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/vmbox/vmbox/host/instance"
)

func (a *app) createCommand() *cobra.Command {
	var o startOptions
	c := &cobra.Command{
		Use:   "create [flags]",
		Short: "Create an instance without starting it",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			// Checked first: ensureInstance would apply the flags to an
			// existing instance, and a refused create must change nothing.
			if _, err := a.instance(); err == nil {
				return &ExitError{Code: 1, Message: fmt.Sprintf("instance %q already exists", a.name)}
			} else if !errors.Is(err, instance.ErrNotExist) {
				return err
			}
			if _, _, err := a.ensureInstance(o, cmd.Flags().Changed); err != nil {
				return err
			}
			fmt.Fprintf(a.stdout, "Created instance %q\n", a.name)
			return nil
		},
	}
	addInstanceFlags(c, &o)
	return c
}
