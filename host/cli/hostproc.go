package cli

import (
	"context"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/vmbox/vmbox/host/hostproc"
	"github.com/vmbox/vmbox/host/lifecycle"
)

// hostprocCommand is the hidden mode in which the binary becomes an
// instance's host process; `start` launches it detached.
func (a *app) hostprocCommand() *cobra.Command {
	return &cobra.Command{
		Use:    lifecycle.HostProcessCommand,
		Hidden: true,
		Args:   cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			inst, err := a.instance()
			if err != nil {
				return err
			}
			drv, err := lifecycle.NewDriver(inst.Config.Driver, inst.Config.Arch)
			if err != nil {
				return err
			}
			image, err := lifecycle.FindImage(inst.Config.Arch)
			if err != nil {
				return err
			}
			a.interrupts.stop() // the host process stops its VM on them instead
			ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			log := slog.New(slog.NewTextHandler(a.stderr, nil)).With("instance", inst.Config.Name)
			return hostproc.Run(ctx, hostproc.Options{Instance: inst, Driver: drv, ImageDir: image, Log: log})
		},
	}
}
