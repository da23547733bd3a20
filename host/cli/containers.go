package cli

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	units "github.com/docker/go-units"
	"github.com/spf13/cobra"

	"github.com/vmbox/vmbox/guest/api"
	"github.com/vmbox/vmbox/host/sshclient"
)

// call connects and runs one operation that answers with JSON.
func (a *app) call(ctx context.Context, op string, args, reply any) error {
	c, err := a.connect(ctx)
	if err != nil {
		return err
	}
	defer c.Close()
	return c.Call(ctx, op, args, reply)
}

// forEachNamed connects once and runs op for every named container or
// network, printing each name as Docker does, and fails (after trying all)
// if any failed.
func (a *app) forEachNamed(ctx context.Context, names []string, op func(c *sshclient.Client, name string) error) error {
	c, err := a.connect(ctx)
	if err != nil {
		return err
	}
	defer c.Close()
	failed := 0
	for _, n := range names {
		if err := op(c, n); err != nil {
			fmt.Fprintln(a.stderr, "vmbox: "+firstLine(err.Error()))
			failed++
			continue
		}
		fmt.Fprintln(a.stdout, n)
	}
	if failed > 0 {
		return &ExitError{Code: 1}
	}
	return nil
}

func (a *app) psCommand() *cobra.Command {
	var all bool
	var filterValues []string
	var out outputFlags
	c := &cobra.Command{
		Use:   "ps [flags]",
		Short: "List containers",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := out.check(); err != nil {
				return err
			}
			filters, err := api.ParseFilters(filterValues, api.ContainerFilterKeys()...)
			if err != nil {
				return usageError("%v", err)
			}
			var list []api.ContainerSummary
			if err := a.call(cmd.Context(), api.OpPs, api.PsArgs{All: all, Filters: filters}, &list); err != nil {
				return err
			}
			return printList(a.stdout, out, list, func(c api.ContainerSummary) string { return shortID(c.ID) },
				"CONTAINER ID\tIMAGE\tCOMMAND\tCREATED\tSTATUS\tPORTS\tNAMES",
				func(w io.Writer, c api.ContainerSummary) {
					names := make([]string, len(c.Names))
					for i, n := range c.Names {
						names[i] = strings.TrimPrefix(n, "/")
					}
					fmt.Fprintf(w, "%s\t%s\t%s\t%s ago\t%s\t%s\t%s\n", shortID(c.ID), c.Image, quoteCommand(c.Command),
						units.HumanDuration(time.Since(time.Unix(c.Created, 0))), c.Status, formatPorts(c.Ports), strings.Join(names, ","))
				})
		},
	}
	c.Flags().BoolVarP(&all, "all", "a", false, "show all containers, not only running ones")
	c.Flags().StringArrayVarP(&filterValues, "filter", "f", nil, "show only containers that match: id=, name=, label=KEY[=VALUE], status=, ancestor=IMAGE, exited=CODE, network= (repeatable)")
	addOutputFlags(c, &out, true)
	return c
}

func shortID(id string) string {
	id = strings.TrimPrefix(id, "sha256:")
	if len(id) > 12 {
		return id[:12]
	}
	return id
}

func quoteCommand(c string) string {
	if len(c) > 20 {
		c = c[:19] + "…"
	}
	return `"` + c + `"`
}

func (a *app) execCommand() *cobra.Command {
	var interactive, tty, privileged bool
	var env []string
	var workdir, user string
	c := &cobra.Command{
		Use:   "exec [flags] CONTAINER COMMAND [ARG...]",
		Short: "Run a command in a running container",
		Args:  cobra.MinimumNArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			envv, err := collectEnv(nil, env)
			if err != nil {
				return err
			}
			c, err := a.connect(cmd.Context())
			if err != nil {
				return err
			}
			defer c.Close()
			x := api.ExecArgs{Container: args[0], Cmd: args[1:], Env: envv, WorkingDir: workdir, User: user,
				Tty: tty, OpenStdin: interactive, Privileged: privileged}
			if tty {
				x.ConsoleSize = terminalSize()
			}
			code, err := a.stream(cmd.Context(), c, api.OpExec, x, streamOptions{stdin: interactive, tty: tty, attached: true, bulk: true})
			if err != nil {
				return err
			}
			if code != 0 {
				return &ExitError{Code: code}
			}
			return nil
		},
	}
	c.Flags().SetInterspersed(false)
	c.Flags().BoolVarP(&interactive, "interactive", "i", false, "keep stdin open and forward it")
	c.Flags().BoolVarP(&tty, "tty", "t", false, "allocate a terminal")
	c.Flags().BoolVar(&privileged, "privileged", false, "give the command all capabilities")
	c.Flags().StringArrayVarP(&env, "env", "e", nil, "set environment variables")
	c.Flags().StringVarP(&workdir, "workdir", "w", "", "working directory")
	c.Flags().StringVarP(&user, "user", "u", "", "user (name|uid[:group|gid])")
	return c
}

func (a *app) killCommand() *cobra.Command {
	var signal string
	c := &cobra.Command{
		Use:   "kill [flags] CONTAINER...",
		Short: "Send a signal (KILL by default) to containers",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.forEachNamed(cmd.Context(), args, func(cl *sshclient.Client, n string) error {
				return cl.Call(cmd.Context(), api.OpKill, api.KillArgs{Container: n, Signal: signal}, nil)
			})
		},
	}
	c.Flags().StringVarP(&signal, "signal", "s", "KILL", "signal to send")
	return c
}

func (a *app) rmCommand() *cobra.Command {
	var force, volumes bool
	c := &cobra.Command{
		Use:   "rm [flags] CONTAINER...",
		Short: "Remove containers",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.forEachNamed(cmd.Context(), args, func(cl *sshclient.Client, n string) error {
				return cl.Call(cmd.Context(), api.OpRm, api.RmArgs{Container: n, Force: force, Volumes: volumes}, nil)
			})
		},
	}
	c.Flags().BoolVarP(&force, "force", "f", false, "kill a running container first")
	c.Flags().BoolVarP(&volumes, "volumes", "v", false, "remove the container's anonymous volumes too")
	return c
}

// stopContainers is `vmbox stop CONTAINER...` (stop without arguments stops the VM).
func (a *app) stopContainers(ctx context.Context, names []string, timeout int) error {
	return a.forEachNamed(ctx, names, func(cl *sshclient.Client, n string) error {
		return cl.Call(ctx, api.OpStop, api.StopArgs{Container: n, Timeout: timeout}, nil)
	})
}

// startContainers is `vmbox start CONTAINER...` (start without arguments starts the VM).
func (a *app) startContainers(ctx context.Context, names []string) error {
	return a.forEachNamed(ctx, names, func(cl *sshclient.Client, n string) error {
		return cl.Call(ctx, api.OpStart, api.ContainerArgs{Container: n}, nil)
	})
}

func (a *app) inspectCommand() *cobra.Command {
	var typ string
	c := &cobra.Command{
		Use:   "inspect [flags] NAME...",
		Short: "Show low-level information on containers or images as JSON",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if typ != "" && typ != "container" && typ != "image" {
				return usageError("invalid --type %q: use container or image", typ)
			}
			c, err := a.connect(cmd.Context())
			if err != nil {
				return err
			}
			defer c.Close()
			code, err := a.stream(cmd.Context(), c, api.OpInspect, api.InspectArgs{Names: args, Type: typ}, streamOptions{})
			if err != nil {
				return err
			}
			if code != 0 {
				return &ExitError{Code: code}
			}
			return nil
		},
	}
	c.Flags().StringVar(&typ, "type", "", "container or image")
	return c
}
