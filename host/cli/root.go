// Package cli implements the vmbox command line: one file per command. It
// manages instances (start, stop, status, ...) through the instance store and
// the per-instance host process, and forwards every guest and container
// command to the agent over SSH.
package cli

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/vmbox/vmbox/guest/api"
	"github.com/vmbox/vmbox/host/instance"
	"github.com/vmbox/vmbox/host/lifecycle"
	"github.com/vmbox/vmbox/host/sshclient"
	"github.com/vmbox/vmbox/internal/portfwd"
)

// ExitError ends the CLI with a code and, when Message is set, one line on stderr.
type ExitError struct {
	Code    int
	Message string
}

func (e *ExitError) Error() string { return e.Message }

// app is the state every command shares: the selected instance or agent and
// the process's streams.
type app struct {
	name string // --name
	host string // --host: unix:///path of an agent to reach directly
	// insecureRegistries may be pulled from over plain HTTP, like Docker's
	// daemon setting of that name.
	insecureRegistries []string
	stdin              io.Reader
	stdout             io.Writer
	stderr             io.Writer
	interrupts         *interrupts
}

// Execute runs the CLI with args and returns the process exit code.
func Execute(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	a := &app{stdin: stdin, stdout: stdout, stderr: stderr}
	root := a.rootCommand()
	root.SetArgs(args)
	root.SetIn(stdin)
	root.SetOut(stdout)
	root.SetErr(stderr)
	ctx, cancel := context.WithCancelCause(context.Background())
	defer cancel(nil)
	a.interrupts = watchInterrupts(cancel, stderr, os.Exit)
	defer a.interrupts.stop()
	err := root.ExecuteContext(ctx)
	var ie *interruptedError
	if errors.As(context.Cause(ctx), &ie) {
		// Ended by the user's signal: the shell's code for it, no message.
		return ie.exitCode()
	}
	if err == nil {
		return 0
	}
	if errors.Is(err, lifecycle.ErrInvalid) {
		fmt.Fprintln(stderr, "vmbox: "+firstLine(err.Error()))
		return 2
	}
	var ee *ExitError
	if errors.As(err, &ee) {
		if ee.Message != "" {
			fmt.Fprintln(stderr, "vmbox: "+ee.Message)
		}
		return ee.Code
	}
	var noAnswer *sshclient.NoAnswerError
	var unavailable *sshclient.UnavailableError
	if errors.As(err, &noAnswer) || errors.As(err, &unavailable) || errors.Is(err, sshclient.ErrSignalNotTaken) || errors.Is(err, sshclient.ErrConnectionLost) {
		// The guest failed the command, not the user: Docker's 125.
		fmt.Fprintln(stderr, "vmbox: "+firstLine(err.Error()))
		return api.ExitEngineError
	}
	var re *sshclient.RemoteError
	if errors.As(err, &re) {
		fmt.Fprintln(stderr, "vmbox: "+firstLine(re.Message))
		return re.Code
	}
	fmt.Fprintln(stderr, "vmbox: "+firstLine(err.Error()))
	return 1
}

func firstLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}

func (a *app) rootCommand() *cobra.Command {
	root := &cobra.Command{
		Use:           "vmbox",
		Short:         "Linux containers in a lightweight VM",
		SilenceUsage:  true,
		SilenceErrors: true,
		// Flag errors are user errors: one line and exit 2 would differ from
		// Docker, which exits 125 for its own usage errors.
	}
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		return &ExitError{Code: 125, Message: fmt.Sprintf("%v (see '%s --help')", err, c.CommandPath())}
	})
	root.PersistentFlags().StringVar(&a.name, "name", envOr("VMBOX_INSTANCE", instance.DefaultName), "instance to act on")
	root.PersistentFlags().StringVar(&a.host, "host", os.Getenv("VMBOX_HOST"), "reach an agent directly (unix:///path/agent.sock) instead of an instance's VM")
	root.PersistentFlags().StringSliceVar(&a.insecureRegistries, "insecure-registry", splitList(os.Getenv("VMBOX_INSECURE_REGISTRIES")),
		"registries (host[:port]) that may be reached over plain HTTP, besides loopback and private addresses")
	for _, c := range []*cobra.Command{
		a.startCommand(), a.stopCommand(), a.restartCommand(), a.statusCommand(), a.listCommand(),
		a.deleteCommand(), a.createCommand(), a.shellCommand(), a.logsCommand(), a.versionCommand(),
		a.hostprocCommand(),
		a.runCommand(), a.psCommand(), a.execCommand(), a.killCommand(), a.rmCommand(), a.inspectCommand(),
		a.portCommand(), a.networkCommand(), a.volumeCommand(),
		a.imagesCommand(), a.pullCommand(), a.pushCommand(), a.tagCommand(), a.buildCommand(), a.builderCommand(), a.loginCommand(), a.logoutCommand(), a.rmiCommand(), a.loadCommand(), a.saveCommand(),
	} {
		root.AddCommand(c)
	}
	return root
}

func splitList(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}

func (a *app) store() (instance.Store, error) {
	root, err := instance.DefaultRoot()
	if err != nil {
		return instance.Store{}, err
	}
	return instance.Store{Root: root}, nil
}

func (a *app) instance() (*instance.Instance, error) {
	s, err := a.store()
	if err != nil {
		return nil, err
	}
	return s.Get(a.name)
}

// badFlag is an instance command's bad-input error: one line, exit code 2.
// (Container commands exit 125 for bad input, as Docker's do: usageError.)
func badFlag(format string, args ...any) error {
	return &ExitError{Code: 2, Message: fmt.Sprintf(format, args...)}
}

func (a *app) manager() (*lifecycle.Manager, error) {
	s, err := a.store()
	if err != nil {
		return nil, err
	}
	return &lifecycle.Manager{Store: s}, nil
}

// managedInstance is the selected instance and the manager of its store.
func (a *app) managedInstance() (*lifecycle.Manager, *instance.Instance, error) {
	m, err := a.manager()
	if err != nil {
		return nil, nil, err
	}
	inst, err := m.Store.Get(a.name)
	if err != nil {
		return nil, nil, err
	}
	return m, inst, nil
}

// log reports what a lifecycle operation wants the user to know, as
// "vmbox: message" lines on stderr.
func (a *app) log() *slog.Logger {
	return slog.New(&lineHandler{w: a.stderr})
}

// notRunning is the error for commands that need a running instance.
func (a *app) notRunning() error {
	return &ExitError{Code: 1, Message: fmt.Sprintf("instance %q is not running; start it with: vmbox start%s", a.name, a.nameFlag())}
}

func (a *app) nameFlag() string {
	if a.name == instance.DefaultName {
		return ""
	}
	return " --name " + a.name
}

// connect reaches the agent: directly with --host, else through the running
// instance's host process.
func (a *app) connect(ctx context.Context) (*sshclient.Client, error) {
	inst, err := a.instance()
	if errors.Is(err, instance.ErrNotExist) {
		if a.host != "" {
			return nil, fmt.Errorf("--host needs the keys of instance %q: create it with: vmbox create%s", a.name, a.nameFlag())
		}
		return nil, a.notRunning()
	}
	if err != nil {
		return nil, err
	}
	keys, err := inst.Keys()
	if err != nil {
		return nil, err
	}
	socket := inst.Path(instance.SocketFile)
	if a.host != "" {
		p, ok := strings.CutPrefix(a.host, "unix://")
		if !ok || p == "" {
			return nil, &ExitError{Code: 125, Message: fmt.Sprintf("invalid --host %q: only unix:///path/to/agent.sock is supported", a.host)}
		}
		socket = p
	} else if !instance.Held(inst.Path(instance.RunLockFile)) {
		return nil, a.notRunning()
	}
	c, err := sshclient.Dial(ctx, socket, keys)
	if err != nil {
		if a.host != "" {
			return nil, fmt.Errorf("cannot reach agent at %s: %w", a.host, err)
		}
		return nil, fmt.Errorf("instance %q is running but its agent does not answer (is it still starting?): %w", a.name, err)
	}
	if a.host == "" {
		if d := gatewayDialer(inst); d != nil {
			c.CarryStreamsThrough(d)
		}
	}
	return c, nil
}

// gatewayDialer opens streams to the instance's forwarding gateway where
// its host process published one (instance.BootInfo.Gateway), or is nil.
func gatewayDialer(inst *instance.Instance) *portfwd.StreamDialer {
	bi, err := inst.ReadBootInfo()
	if err != nil || bi.Gateway == nil {
		return nil
	}
	token, err := hex.DecodeString(bi.Gateway.Token)
	if err != nil || len(token) == 0 {
		return nil
	}
	addr := bi.Gateway.Addr
	return &portfwd.StreamDialer{Token: token, Dial: func(ctx context.Context) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "tcp", addr)
	}}
}
