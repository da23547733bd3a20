package cli

import (
	"context"
	"errors"
	"io"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/vmbox/vmbox/guest/api"
	"github.com/vmbox/vmbox/host/instance"
)

func (a *app) logsCommand() *cobra.Command {
	var follow, timestamps bool
	var tail string
	c := &cobra.Command{
		Use:   "logs [flags] [CONTAINER]",
		Short: "Show a container's output, or without CONTAINER the VM's console log",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			n, err := parseTail(tail)
			if err != nil {
				return err
			}
			if len(args) == 0 {
				return a.consoleLog(cmd.Context(), follow, n)
			}
			c, err := a.connect(cmd.Context())
			if err != nil {
				return err
			}
			defer c.Close()
			code, err := a.stream(cmd.Context(), c, api.OpLogs, api.LogsArgs{Container: args[0], Follow: follow, Tail: n, Timestamps: timestamps}, streamOptions{bulk: true})
			if err != nil {
				return err
			}
			if code != 0 {
				return &ExitError{Code: code}
			}
			return nil
		},
	}
	c.Flags().BoolVarP(&follow, "follow", "f", false, "keep printing new output")
	c.Flags().StringVarP(&tail, "tail", "n", "all", `number of lines to show from the end, or "all"`)
	c.Flags().BoolVarP(&timestamps, "timestamps", "t", false, "show timestamps (containers)")
	return c
}

// consoleLog prints the guest console log, following it while the instance runs.
func (a *app) consoleLog(ctx context.Context, follow bool, tail int) error {
	inst, err := a.instance()
	if err != nil {
		return err
	}
	f, err := os.Open(inst.Path(instance.ConsoleLogFile))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	defer f.Close()
	if tail >= 0 {
		if err := seekTail(f, tail); err != nil {
			return err
		}
	}
	for {
		if _, err := io.Copy(a.stdout, f); err != nil {
			return err
		}
		if !follow {
			return nil
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// seekTail positions f at the start of its last n lines.
func seekTail(f *os.File, n int) error {
	st, err := f.Stat()
	if err != nil {
		return err
	}
	size := st.Size()
	if n == 0 {
		_, err := f.Seek(size, io.SeekStart)
		return err
	}
	const chunk = 64 << 10
	buf := make([]byte, chunk)
	seen := 0
	for end := size; end > 0; {
		start := max(end-chunk, 0)
		if _, err := f.ReadAt(buf[:end-start], start); err != nil && !errors.Is(err, io.EOF) {
			return err
		}
		for i := end - start - 1; i >= 0; i-- {
			// The newline that ends the last line does not start a line.
			if buf[i] != '\n' || start+i == size-1 {
				continue
			}
			if seen++; seen == n {
				_, err := f.Seek(start+i+1, io.SeekStart)
				return err
			}
		}
		end = start
	}
	_, err = f.Seek(0, io.SeekStart)
	return err
}

func parseTail(s string) (int, error) {
	if s == "all" || s == "" {
		return -1, nil
	}
	var n int
	for _, r := range s {
		if r < '0' || r > '9' {
			return 0, &ExitError{Code: 125, Message: "invalid --tail " + s + `: use a number or "all"`}
		}
		n = n*10 + int(r-'0')
	}
	return n, nil
}
