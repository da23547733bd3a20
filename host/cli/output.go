package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"text/tabwriter"

	"github.com/spf13/cobra"
)

// outputFlags are the --format and --quiet flags of the listing commands.
type outputFlags struct {
	format string
	quiet  bool
}

// addOutputFlags registers --format, and -q/--quiet when the listing has IDs.
func addOutputFlags(c *cobra.Command, o *outputFlags, withQuiet bool) {
	c.Flags().StringVar(&o.format, "format", "table", "output format: table or json")
	if withQuiet {
		c.Flags().BoolVarP(&o.quiet, "quiet", "q", false, "only show IDs")
	}
}

func (o outputFlags) check() error {
	if o.format != "" && o.format != "table" && o.format != "json" {
		return &ExitError{Code: 2, Message: fmt.Sprintf("invalid --format %q: use table or json", o.format)}
	}
	return nil
}

// printList writes list as JSON, as IDs (quiet), or as a table with header
// whose rows row writes (tab-separated, newline-terminated; an item may
// take several rows).
func printList[T any](w io.Writer, o outputFlags, list []T, id func(T) string, header string, row func(io.Writer, T)) error {
	if o.format == "json" {
		return writeJSON(w, list)
	}
	if o.quiet && id != nil {
		for _, item := range list {
			fmt.Fprintln(w, id(item))
		}
		return nil
	}
	tw := tabwriter.NewWriter(w, 0, 8, 3, ' ', 0)
	fmt.Fprintln(tw, header)
	for _, item := range list {
		row(tw, item)
	}
	return tw.Flush()
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
