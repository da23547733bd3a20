package cli

import (
	"github.com/spf13/cobra"

	"github.com/vmbox/vmbox/host/lifecycle"
)

func (a *app) listCommand() *cobra.Command {
	var format string
	c := &cobra.Command{
		Use:     "list [flags]",
		Aliases: []string{"ls"},
		Short:   "List instances",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkFormat(format); err != nil {
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
			if format == "json" {
				return writeJSON(a.stdout, list)
			}
			return writeStatusTable(a.stdout, list)
		},
	}
	c.Flags().StringVar(&format, "format", "table", "output format: table or json")
	return c
}
