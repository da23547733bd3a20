package hostproc

import (
	"context"
	"net"
	"path/filepath"
	"testing"

	"golang.org/x/crypto/ssh"

	"github.com/vmbox/vmbox/guest/api"
	"github.com/vmbox/vmbox/guest/api/sshproto"
	"github.com/vmbox/vmbox/host/instance"
)

// agentConn stands in for the agent: an in-process SSH server with the
// keys of a new instance, which serve runs for each connection, and the
// client connection the host process would hold to it (closed when the
// test ends).
func agentConn(t *testing.T, serve func(chans <-chan ssh.NewChannel, reqs <-chan *ssh.Request)) (ssh.Conn, *instance.Instance) {
	t.Helper()
	inst, err := instance.Store{Root: t.TempDir()}.Create(instance.Config{Name: "m", Arch: "amd64", CPUs: 1, MemoryMiB: 512, DiskGiB: 1})
	if err != nil {
		t.Fatal(err)
	}
	keys, err := inst.Keys()
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("unix", filepath.Join(inst.Dir, "p.sock"))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	go sshproto.Serve(ctx, l, func(c net.Conn) {
		conn, chans, reqs, err := ssh.NewServerConn(c, sshproto.ServerConfig(keys.Host, keys.ClientPublic))
		if err != nil {
			return
		}
		defer conn.Close()
		serve(chans, reqs)
	})
	c, err := net.Dial("unix", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	conn, chans, reqs, err := ssh.NewClientConn(c, "agent", &ssh.ClientConfig{User: api.SSHUser, Auth: []ssh.AuthMethod{ssh.PublicKeys(keys.Client)}, HostKeyCallback: ssh.FixedHostKey(keys.HostPublic)})
	if err != nil {
		t.Fatal(err)
	}
	go ssh.DiscardRequests(reqs)
	go rejectChannels(chans)
	t.Cleanup(func() { conn.Close() })
	return conn, inst
}

func rejectChannels(chans <-chan ssh.NewChannel) {
	for nc := range chans {
		nc.Reject(ssh.Prohibited, "")
	}
}
