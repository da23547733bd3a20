package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"

	units "github.com/docker/go-units"
	"github.com/spf13/cobra"

	"github.com/vmbox/vmbox/guest/api"
	"github.com/vmbox/vmbox/host/sshclient"
)

func (a *app) volumeCommand() *cobra.Command {
	c := &cobra.Command{
		Use:   "volume COMMAND",
		Short: "Manage volumes: data on the VM's disk that containers mount",
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 {
				return cmd.Help()
			}
			return &ExitError{Code: 1, Message: fmt.Sprintf("unknown command %q for %q", args[0], cmd.CommandPath())}
		},
	}
	c.AddCommand(a.volumeCreateCommand(), a.volumeListCommand(), a.volumeInspectCommand(), a.volumeRemoveCommand(), a.volumePruneCommand())
	return c
}

func (a *app) volumeCreateCommand() *cobra.Command {
	var labels []string
	var driver string
	c := &cobra.Command{
		Use:   "create [flags] [VOLUME]",
		Short: "Create a volume (a random name when none is given) and print its name",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			req := api.VolumeCreateArgs{Driver: driver}
			if len(args) == 1 {
				if err := api.CheckVolumeName(args[0]); err != nil {
					return usageError("%v", err)
				}
				req.Name = args[0]
			}
			var err error
			if req.Labels, err = keyValues("--label", labels); err != nil {
				return err
			}
			cl, err := a.connectOrStart(cmd.Context(), false)
			if err != nil {
				return err
			}
			defer cl.Close()
			var v api.Volume
			if err := cl.Call(cmd.Context(), api.OpVolumeCreate, req, &v); err != nil {
				return err
			}
			fmt.Fprintln(a.stdout, v.Name)
			return nil
		},
	}
	c.Flags().StringArrayVar(&labels, "label", nil, "set a label KEY=VALUE (repeatable)")
	c.Flags().StringVarP(&driver, "driver", "d", "local", "volume driver (only local)")
	return c
}

func (a *app) volumeListCommand() *cobra.Command {
	var out outputFlags
	var filters []string
	c := &cobra.Command{
		Use:     "ls [flags]",
		Aliases: []string{"list"},
		Short:   "List volumes",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := out.check(); err != nil {
				return err
			}
			f, err := api.ParseFilters(filters, "name", "label", "dangling", "driver")
			if err != nil {
				return usageError("%v", err)
			}
			var list []api.Volume
			if err := a.call(cmd.Context(), api.OpVolumeList, api.VolumeListArgs{Filters: f}, &list); err != nil {
				return err
			}
			return printVolumes(a.stdout, out, list)
		},
	}
	c.Flags().StringArrayVarP(&filters, "filter", "f", nil, "show only volumes that match: name=, label=KEY[=VALUE], dangling=true|false (repeatable)")
	addOutputFlags(c, &out, true)
	return c
}

// printVolumes writes volume ls's output, sorted by name.
func printVolumes(w io.Writer, out outputFlags, list []api.Volume) error {
	list = slices.Clone(list)
	slices.SortFunc(list, func(a, b api.Volume) int { return strings.Compare(a.Name, b.Name) })
	return printList(w, out, list, func(v api.Volume) string { return v.Name }, "DRIVER\tVOLUME NAME", func(w io.Writer, v api.Volume) {
		fmt.Fprintf(w, "%s\t%s\n", v.Driver, v.Name)
	})
}

func (a *app) volumeInspectCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "inspect VOLUME...",
		Short: "Show volumes as JSON",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var found []api.Volume
			err := a.call(cmd.Context(), api.OpVolumeInspect, api.VolumeInspectArgs{Names: args}, &found)
			if found == nil {
				found = []api.Volume{}
			}
			doc, jerr := json.MarshalIndent(found, "", "    ")
			if jerr != nil {
				return fmt.Errorf("encode volumes: %w", jerr)
			}
			fmt.Fprintf(a.stdout, "%s\n", doc)
			return err
		},
	}
}

func (a *app) volumeRemoveCommand() *cobra.Command {
	var force bool
	c := &cobra.Command{
		Use:     "rm [flags] VOLUME...",
		Aliases: []string{"remove"},
		Short:   "Remove volumes no container uses",
		Args:    cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.forEachNamed(cmd.Context(), args, func(cl *sshclient.Client, name string) error {
				return cl.Call(cmd.Context(), api.OpVolumeRemove, api.VolumeRemoveArgs{Names: []string{name}, Force: force}, nil)
			})
		},
	}
	c.Flags().BoolVarP(&force, "force", "f", false, "no error when a volume does not exist")
	return c
}

func (a *app) volumePruneCommand() *cobra.Command {
	var all, force bool
	var filters []string
	c := &cobra.Command{
		Use:   "prune [flags]",
		Short: "Remove the anonymous volumes no container uses (all unused ones with --all)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			f, err := api.ParseFilters(filters, "label")
			if err != nil {
				return usageError("%v", err)
			}
			var rep api.VolumePruneReply
			if err := a.call(cmd.Context(), api.OpVolumePrune, api.VolumePruneArgs{All: all, Filters: f}, &rep); err != nil {
				return err
			}
			if len(rep.VolumesDeleted) > 0 {
				fmt.Fprintln(a.stdout, "Deleted Volumes:")
				for _, n := range rep.VolumesDeleted {
					fmt.Fprintln(a.stdout, n)
				}
				fmt.Fprintln(a.stdout)
			}
			fmt.Fprintf(a.stdout, "Total reclaimed space: %s\n", units.HumanSize(float64(rep.SpaceReclaimed)))
			return nil
		},
	}
	c.Flags().BoolVarP(&all, "all", "a", false, "remove every unused volume, named ones too")
	// As docker's: prune here never asks, so -f only keeps scripts working.
	c.Flags().BoolVarP(&force, "force", "f", false, "do not ask for confirmation")
	c.Flags().StringArrayVar(&filters, "filter", nil, "only volumes that match: label=KEY[=VALUE]")
	return c
}
