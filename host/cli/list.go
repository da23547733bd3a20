package cli

import (
	"github.com/spf13/cobra"

	"github.com/vmbox/vmbox/host/lifecycle"
)

func (a *app) listCommand() *cobra.Command {
	var out outputFlags
	c := &cobra.Command{
		Use:     "list [flags]",
		Aliases: []string{"ls"},
		Short:   "List instances",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := out.check(); err != nil {
				return err
			}
			store, err := a.store()
			if err != nil {
				return err
			}
			insts, err := store.List()
			if err != nil {
				return err
			}
			list := make([]lifecycle.Status, 0, len(insts))
			for _, inst := range insts {
				list = append(list, lifecycle.StatusOf(inst))
			}
			return a.printStatus(out, list)
		},
	}
	addOutputFlags(c, &out, false)
	return c
}
