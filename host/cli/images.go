package cli

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	units "github.com/docker/go-units"
	"github.com/spf13/cobra"

	"github.com/vmbox/vmbox/guest/api"
	"github.com/vmbox/vmbox/host/sshclient"
)

func (a *app) imagesCommand() *cobra.Command {
	var out outputFlags
	c := &cobra.Command{
		Use:   "images [flags]",
		Short: "List images",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := out.check(); err != nil {
				return err
			}
			var list []api.ImageSummary
			if err := a.call(cmd.Context(), api.OpImages, api.ImagesArgs{}, &list); err != nil {
				return err
			}
			return printList(a.stdout, out, list, func(im api.ImageSummary) string { return shortID(im.ID) },
				"REPOSITORY\tTAG\tIMAGE ID\tCREATED\tSIZE",
				func(w io.Writer, im api.ImageSummary) {
					created := createdSince(im.Created)
					tags := im.RepoTags
					if len(tags) == 0 {
						tags = []string{"<none>:<none>"}
					}
					for _, t := range tags {
						repo, tag := splitTag(t)
						fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\n", repo, tag, shortID(im.ID), created, formatBytes(im.Size))
					}
				})
		},
	}
	addOutputFlags(c, &out, true)
	return c
}

// splitTag splits "host:5000/name:tag" into repository and tag.
func splitTag(ref string) (string, string) {
	i := strings.LastIndex(ref, ":")
	if i < 0 || strings.Contains(ref[i:], "/") {
		return ref, "<none>"
	}
	return ref[:i], ref[i+1:]
}

func (a *app) pullCommand() *cobra.Command {
	var platform string
	var quiet bool
	c := &cobra.Command{
		Use:   "pull [flags] IMAGE",
		Short: "Pull an image from a registry into the VM's image store",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cl, err := a.connectOrStart(cmd.Context(), false)
			if err != nil {
				return err
			}
			defer cl.Close()
			return a.streamProgress(cmd.Context(), cl, api.OpPull, api.PullArgs{Ref: args[0], Platform: platform, Auth: registryAuth(args[0]), InsecureRegistries: a.insecureRegistries}, quiet)
		},
	}
	c.Flags().StringVar(&platform, "platform", "", "platform (e.g. linux/arm64)")
	c.Flags().BoolVarP(&quiet, "quiet", "q", false, "print only the image reference")
	return c
}

// renderPull turns the agent's JSON progress lines into what a person
// reads: per-layer bars on a terminal, plain status lines otherwise.
func renderPull(r io.Reader, w io.Writer, quiet bool) error {
	tty := isTerminal(w)
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	var order []string
	lines := map[string]string{}
	drawn := 0
	var final error
	for sc.Scan() {
		var p api.PullProgress
		if json.Unmarshal(sc.Bytes(), &p) != nil {
			continue
		}
		if p.Error != "" {
			final = &ExitError{Code: 1, Message: p.Error}
			continue
		}
		if quiet {
			continue
		}
		if p.ID == "" || !tty {
			if p.ProgressDetail != nil && !tty {
				continue // byte counts are for bars
			}
			if p.ID != "" {
				fmt.Fprintf(w, "%s: %s\n", p.ID, p.Status)
			} else {
				fmt.Fprintln(w, p.Status)
			}
			continue
		}
		if _, ok := lines[p.ID]; !ok {
			order = append(order, p.ID)
		}
		line := fmt.Sprintf("%s: %s", p.ID, p.Status)
		if d := p.ProgressDetail; d != nil && d.Total > 0 {
			line += " " + bar(d.Current, d.Total)
		}
		lines[p.ID] = line
		// Redraw the layer block in place.
		if drawn > 0 {
			fmt.Fprintf(w, "\033[%dA", drawn)
		}
		for _, id := range order {
			fmt.Fprintf(w, "\r\033[K%s\n", lines[id])
		}
		drawn = len(order)
	}
	if err := sc.Err(); err != nil && final == nil {
		final = err
	}
	return final
}

func bar(cur, total int64) string {
	const width = 40
	n := int(float64(width) * float64(cur) / float64(total))
	n = max(0, min(n, width))
	return fmt.Sprintf("[%s>%s] %s/%s", strings.Repeat("=", n), strings.Repeat(" ", width-n), formatBytes(cur), formatBytes(total))
}

func (a *app) rmiCommand() *cobra.Command {
	var force bool
	c := &cobra.Command{
		Use:   "rmi [flags] IMAGE...",
		Short: "Remove images",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var res []api.RmiResult
			if err := a.call(cmd.Context(), api.OpRmi, api.RmiArgs{Names: args, Force: force}, &res); err != nil {
				return err
			}
			for _, r := range res {
				if r.Untagged != "" {
					fmt.Fprintln(a.stdout, "Untagged: "+r.Untagged)
				}
				if r.Deleted != "" {
					fmt.Fprintln(a.stdout, "Deleted: "+r.Deleted)
				}
			}
			return nil
		},
	}
	c.Flags().BoolVarP(&force, "force", "f", false, "remove even when containers use the image")
	return c
}

func (a *app) loadCommand() *cobra.Command {
	var input string
	var quiet bool
	c := &cobra.Command{
		Use:   "load [flags]",
		Short: "Load images from a docker-save or OCI archive (a file or stdin)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			var in io.Reader = a.stdin
			if input != "" {
				f, err := os.Open(input)
				if err != nil {
					return &ExitError{Code: 1, Message: err.Error()}
				}
				defer f.Close()
				in = f
			} else if isTerminal(a.stdin) {
				return usageError("load needs an archive: use -i FILE or pipe one to stdin")
			}
			cl, err := a.connectOrStart(cmd.Context(), false)
			if err != nil {
				return err
			}
			defer cl.Close()
			var out, errb strings.Builder
			code, err := cl.Stream(cmd.Context(), api.OpLoad, nil, sshclient.IO{Stdin: in, Stdout: &out, Stderr: &errb, Bulk: true})
			if err != nil {
				return err
			}
			if code != 0 {
				return &ExitError{Code: code, Message: firstLine(errb.String())}
			}
			var rep api.LoadReply
			if err := json.Unmarshal([]byte(out.String()), &rep); err != nil {
				return fmt.Errorf("decode load reply: %w", err)
			}
			if !quiet {
				for _, l := range rep.Loaded {
					if strings.HasPrefix(l, "sha256:") {
						fmt.Fprintln(a.stdout, "Loaded image ID: "+l)
					} else {
						fmt.Fprintln(a.stdout, "Loaded image: "+l)
					}
				}
			}
			return nil
		},
	}
	c.Flags().StringVarP(&input, "input", "i", "", "read from this archive file instead of stdin")
	c.Flags().BoolVarP(&quiet, "quiet", "q", false, "print nothing")
	return c
}

func (a *app) saveCommand() *cobra.Command {
	var output string
	c := &cobra.Command{
		Use:   "save [flags] IMAGE...",
		Short: "Write images to a docker-save archive (a file or stdout)",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var out io.Writer = a.stdout
			var f *os.File
			if output != "" {
				var err error
				// Written beside the target and renamed, so a failed save
				// never leaves a truncated archive under the user's name.
				f, err = os.CreateTemp(dirOf(output), ".vmbox-save-*")
				if err != nil {
					return &ExitError{Code: 1, Message: err.Error()}
				}
				defer os.Remove(f.Name())
				defer f.Close()
				out = f
			} else if isTerminal(a.stdout) {
				return usageError("refusing to write an archive to a terminal: use -o FILE or redirect stdout")
			}
			cl, err := a.connect(cmd.Context())
			if err != nil {
				return err
			}
			defer cl.Close()
			var errb strings.Builder
			code, err := cl.Stream(cmd.Context(), api.OpSave, api.SaveArgs{Names: args}, sshclient.IO{Stdout: out, Stderr: &errb, Bulk: true})
			if err != nil {
				return err
			}
			if code != 0 {
				return &ExitError{Code: code, Message: firstLine(errb.String())}
			}
			if f != nil {
				if err := f.Sync(); err != nil {
					return err
				}
				if err := f.Close(); err != nil {
					return err
				}
				if err := os.Rename(f.Name(), output); err != nil {
					return err
				}
			}
			return nil
		},
	}
	c.Flags().StringVarP(&output, "output", "o", "", "write to this file instead of stdout")
	return c
}

func dirOf(p string) string {
	if i := strings.LastIndexAny(p, `/\`); i >= 0 {
		return p[:i+1]
	}
	return "."
}

// createdSince is an image's age as docker images shows it: "N/A" for an
// image whose config has no creation time.
func createdSince(unix int64) string {
	t := time.Unix(unix, 0)
	if t.IsZero() {
		return "N/A"
	}
	return units.HumanDuration(time.Since(t)) + " ago"
}

func (a *app) tagCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "tag SOURCE_IMAGE[:TAG] TARGET_IMAGE[:TAG]",
		Short: "Give an image another name",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.call(cmd.Context(), api.OpTag, api.TagArgs{Source: args[0], Target: args[1]}, nil)
		},
	}
}

func (a *app) pushCommand() *cobra.Command {
	var quiet bool
	c := &cobra.Command{
		Use:   "push [flags] NAME[:TAG]",
		Short: "Push an image to its registry, with the credentials docker login stored",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cl, err := a.connect(cmd.Context())
			if err != nil {
				return err
			}
			defer cl.Close()
			err = a.streamProgress(cmd.Context(), cl, api.OpPush, api.PullArgs{Ref: args[0], Auth: registryAuth(args[0]), InsecureRegistries: a.insecureRegistries}, quiet)
			if quiet && err == nil {
				fmt.Fprintln(a.stdout, args[0])
			}
			return err
		},
	}
	c.Flags().BoolVarP(&quiet, "quiet", "q", false, "print only the image reference")
	return c
}

// streamProgress runs a pull or a push and renders its progress lines.
func (a *app) streamProgress(ctx context.Context, cl *sshclient.Client, op string, args api.PullArgs, quiet bool) error {
	pr, pw := io.Pipe()
	rendered := make(chan error, 1)
	go func() { rendered <- renderPull(pr, a.stdout, quiet) }()
	var errb strings.Builder
	code, err := cl.Stream(ctx, op, args, sshclient.IO{Stdout: pw, Stderr: &errb})
	pw.Close()
	rerr := <-rendered
	if err != nil {
		return err
	}
	if code != 0 {
		return &ExitError{Code: code, Message: firstLine(errb.String())}
	}
	return rerr
}
