package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/vmbox/vmbox/host/lifecycle"
)

func uptime(s lifecycle.Status) string {
	if s.State != lifecycle.StateRunning {
		return "-"
	}
	return humanDuration(time.Duration(s.UptimeSeconds) * time.Second)
}

func writeStatusTable(w io.Writer, list []lifecycle.Status) error {
	tw := tabwriter.NewWriter(w, 0, 8, 3, ' ', 0)
	fmt.Fprintln(tw, "NAME\tSTATE\tDRIVER\tARCH\tCPUS\tMEMORY\tDISK\tUPTIME")
	for _, s := range list {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%s\t%dGiB\t%s\n", s.Name, s.State, s.Driver, s.Arch, s.CPUs, formatMiB(s.MemoryMiB), s.DiskGiB, uptime(s))
	}
	return tw.Flush()
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func checkFormat(format string) error {
	if format != "" && format != "table" && format != "json" {
		return badFlag("invalid --format %q: use table or json", format)
	}
	return nil
}

func (a *app) statusCommand() *cobra.Command {
	var format string
	c := &cobra.Command{
		Use:   "status [flags]",
		Short: "Show the instance's state and resources",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkFormat(format); err != nil {
				return err
			}
			inst, err := a.instance()
			if err != nil {
				return err
			}
			s := lifecycle.StatusOf(inst)
			if format == "json" {
				return writeJSON(a.stdout, s)
			}
			return writeStatusTable(a.stdout, []lifecycle.Status{s})
		},
	}
	c.Flags().StringVar(&format, "format", "table", "output format: table or json")
	return c
}

// humanDuration renders durations the way docker ps does ("3 seconds", "2 hours").
func humanDuration(d time.Duration) string {
	switch s := d.Seconds(); {
	case s < 1:
		return "Less than a second"
	case s < 2:
		return "1 second"
	case s < 60:
		return fmt.Sprintf("%d seconds", int(s))
	case d.Minutes() < 2:
		return "About a minute"
	case d.Minutes() < 60:
		return fmt.Sprintf("%d minutes", int(d.Minutes()))
	case d.Hours() < 2:
		return "About an hour"
	case d.Hours() < 48:
		return fmt.Sprintf("%d hours", int(d.Hours()))
	default:
		return fmt.Sprintf("%d days", int(d.Hours()/24))
	}
}
