package cli

import (
	"fmt"
	"io"
	"time"

	units "github.com/docker/go-units"
	"github.com/spf13/cobra"

	"github.com/vmbox/vmbox/host/lifecycle"
)

func uptime(s lifecycle.Status) string {
	if s.State != lifecycle.StateRunning {
		return "-"
	}
	return units.HumanDuration(time.Duration(s.UptimeSeconds) * time.Second)
}

// stateWords is s's state as a table shows it: a running VM the host
// process paused for want of use says so.
func stateWords(s lifecycle.Status) string {
	if s.State == lifecycle.StateRunning && s.IdlePausedSince != nil {
		return string(s.State) + " (paused while idle)"
	}
	return string(s.State)
}

// printStatus writes instances as a table or JSON; in a table, each
// instance's hint follows on stderr.
func (a *app) printStatus(out outputFlags, list []lifecycle.Status) error {
	if out.format != "json" {
		defer func() {
			for _, s := range list {
				if s.Hint != "" {
					fmt.Fprintf(a.stderr, "vmbox: instance %q is %s: %s\n", s.Name, s.State, s.Hint)
				}
			}
		}()
	}
	return printList(a.stdout, out, list, nil, "NAME\tSTATE\tDRIVER\tARCH\tCPUS\tMEMORY\tDISK\tUPTIME",
		func(w io.Writer, s lifecycle.Status) {
			fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%d\t%s\t%dGiB\t%s\n", s.Name, stateWords(s), s.Driver, s.Arch, s.CPUs, formatMiB(s.MemoryMiB), s.DiskGiB, uptime(s))
		})
}

func (a *app) statusCommand() *cobra.Command {
	var out outputFlags
	c := &cobra.Command{
		Use:   "status [flags]",
		Short: "Show the instance's state and resources",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := out.check(); err != nil {
				return err
			}
			inst, err := a.instance()
			if err != nil {
				return err
			}
			s := lifecycle.StatusOf(inst)
			if out.format == "json" {
				return writeJSON(a.stdout, s) // one object, not a list
			}
			if err := a.printStatus(out, []lifecycle.Status{s}); err != nil {
				return err
			}
			if !out.quiet {
				for _, m := range s.Mounts {
					access := "rw"
					if m.ReadOnly {
						access = "ro"
					}
					via := "sftp"
					if m.Tag != "" {
						via = "virtiofs"
					}
					fmt.Fprintf(a.stdout, "shared folder: %s (%s, %s)\n", m.HostPath, access, via)
				}
				if s.IdlePausedSince != nil {
					fmt.Fprintf(a.stdout, "paused while idle since %s: the next command resumes it\n", s.IdlePausedSince.Format(time.TimeOnly))
				}
				if s.EmulatedBecause != "" {
					fmt.Fprintf(a.stdout, "emulated CPU (%s): %s\n", s.Accelerator, s.EmulatedBecause)
				}
			}
			return nil
		},
	}
	addOutputFlags(c, &out, false)
	return c
}
