package cli

import (
	"github.com/spf13/cobra"

	"github.com/vmbox/vmbox/guest/api"
)

func (a *app) shellCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "shell [-- COMMAND [ARG...]]",
		Short: "Open a shell in the VM, or run one command there and return its exit code",
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.connect(cmd.Context())
			if err != nil {
				return err
			}
			defer c.Close()
			tty := isTerminal(a.stdin) && isTerminal(a.stdout)
			code, err := a.stream(cmd.Context(), c, api.OpShell, api.ShellArgs{Argv: args}, streamOptions{stdin: true, tty: tty, attached: len(args) > 0, bulk: true})
			if err != nil {
				return err
			}
			if code != 0 {
				return &ExitError{Code: code}
			}
			return nil
		},
	}
}
