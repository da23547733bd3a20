package agent

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"golang.org/x/crypto/ssh"

	"github.com/vmbox/vmbox/guest/boot"
)

// Main is the agent's entry point. In the VM (started by boot.Init, PID 1)
// it boots the guest and serves the host over TCP or vsock (as the host's
// instance document says); otherwise it runs in local mode, serving on a
// Unix socket, which is how the engine runs directly on a Linux host.
func Main(args []string, stderr io.Writer) int {
	log := slog.New(slog.NewTextHandler(stderr, nil))
	if boot.Init() {
		if err := runGuest(log); err != nil {
			log.Error("agent failed", "err", err)
		}
		// Without the agent the VM is useless: PID 1 powers it off when we exit.
		return 1
	}
	if err := runLocal(args, log); err != nil {
		fmt.Fprintln(stderr, "vmbox-agent: "+err.Error())
		return 1
	}
	return 0
}

// LocalOptions configure local mode.
type LocalOptions struct {
	Listen        string // unix:///path
	HostKey       string // private key file the agent presents
	AuthorizedKey string // public key file (authorized_keys line) of the one client admitted
	DataDir       string // engine state
	// Networks gives containers Docker's networks on this machine: a
	// bridge, NAT rules and published ports on its own addresses.
	Networks bool
	// DockerSocket, when set, is where the Docker Engine API is served.
	DockerSocket string
}

func runLocal(args []string, log *slog.Logger) error {
	var o LocalOptions
	fs := flag.NewFlagSet("vmbox-agent", flag.ContinueOnError)
	fs.StringVar(&o.Listen, "listen", "", "where to serve: unix:///path/agent.sock")
	fs.StringVar(&o.HostKey, "host-key", "", "SSH host private key file")
	fs.StringVar(&o.AuthorizedKey, "authorized-key", "", "public key file of the client to admit")
	fs.StringVar(&o.DataDir, "data-dir", "/var/lib/vmbox", "engine state directory")
	fs.StringVar(&o.DockerSocket, "docker-socket", "", "also serve the Docker Engine API on this Unix socket path")
	fs.BoolVar(&o.Networks, "networks", false, "give containers Docker's networks on this machine (bridge, NAT, published ports); without it they get loopback only")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if o.Listen == "" || o.HostKey == "" || o.AuthorizedKey == "" {
		return errors.New("local mode needs --listen, --host-key and --authorized-key")
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return ServeLocal(ctx, o, log)
}

// ServeLocal serves the agent on a Unix socket until ctx ends.
func ServeLocal(ctx context.Context, o LocalOptions, log *slog.Logger) error {
	path, ok := strings.CutPrefix(o.Listen, "unix://")
	if !ok || path == "" {
		return fmt.Errorf("invalid --listen %q: use unix:///path/agent.sock", o.Listen)
	}
	hostKey, authorized, err := loadKeyFiles(o.HostKey, o.AuthorizedKey)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	a := &Agent{Log: log, Shutdown: cancel}
	var net engineNetwork
	if o.Networks {
		fwd, err := newLocalPorts(ctx, log)
		if err != nil {
			return err
		}
		defer fwd.Close()
		net = engineNetwork{containers: true, ports: fwd}
	}
	closeEngine, err := a.openEngine(ctx, o.DataDir, net)
	if err != nil {
		return err
	}
	defer closeEngine()
	if o.DockerSocket != "" {
		ops := a.Containers.(*containerOps)
		dl, err := listenUnix(o.DockerSocket)
		if err != nil {
			return fmt.Errorf("docker api socket: %w", err)
		}
		a.serveDockerAPI(ctx, ops, dl, o.DataDir)
		defer os.Remove(o.DockerSocket)
	}
	l, err := listenUnix(path)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	defer os.Remove(path)
	log.Info("agent serving", "socket", path)
	srv := NewServer(hostKey, authorized, a, log)
	srv.DockerSocket = o.DockerSocket
	return srv.Serve(ctx, l)
}

func loadKeyFiles(hostKeyFile, authorizedFile string) (ssh.Signer, ssh.PublicKey, error) {
	hb, err := os.ReadFile(hostKeyFile)
	if err != nil {
		return nil, nil, fmt.Errorf("read host key: %w", err)
	}
	ab, err := os.ReadFile(authorizedFile)
	if err != nil {
		return nil, nil, fmt.Errorf("read authorized key: %w", err)
	}
	return parseKeys(hb, ab)
}

func parseKeys(hostKeyPEM, authorizedLine []byte) (ssh.Signer, ssh.PublicKey, error) {
	hostKey, err := ssh.ParsePrivateKey(hostKeyPEM)
	if err != nil {
		return nil, nil, fmt.Errorf("parse host key: %w", err)
	}
	authorized, _, _, _, err := ssh.ParseAuthorizedKey(authorizedLine)
	if err != nil {
		return nil, nil, fmt.Errorf("parse authorized key: %w", err)
	}
	return hostKey, authorized, nil
}
