package hostproc

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/vmbox/vmbox/guest/api"
	"github.com/vmbox/vmbox/guest/api/sshproto"
	"github.com/vmbox/vmbox/host/share"
)

// mountTimeout bounds one share's mount in the VM.
const mountTimeout = 30 * time.Second

// folderTag is the virtiofs tag of the instance's i-th share.
func folderTag(i int) string { return "vmbox" + strconv.Itoa(i) }

// tagShares gives each share whose virtiofs device the VM has (by tag) its
// tag.
func tagShares(shares []api.Share, exported []string) {
	for i := range shares {
		if slices.Contains(exported, folderTag(i)) {
			shares[i].Tag = folderTag(i)
		}
	}
}

// mountShares shares each host folder into the VM and serves them until
// ctx ends. Folders are mounted at once, except that one inside another
// waits for that one (it must land on top of it). It returns the shares
// the VM mounted; a folder that fails is logged and left out, as a start
// should not fail for one.
func mountShares(ctx context.Context, conn ssh.Conn, shares []api.Share, log *slog.Logger) []api.Share {
	done := make([]chan struct{}, len(shares))
	ok := make([]bool, len(shares))
	for i := range shares {
		done[i] = make(chan struct{})
	}
	for i, sh := range shares {
		outer := -1
		for j := range i {
			if api.ShareCovers(shares[j].GuestPath, sh.GuestPath) {
				outer = j
			}
		}
		go func() {
			defer close(done[i])
			if outer >= 0 {
				<-done[outer]
			}
			if err := mountShare(ctx, conn, sh, log); err != nil {
				log.Warn("host folder not shared", "folder", sh.HostPath, "err", err)
				return
			}
			ok[i] = true
		}()
	}
	var mounted []api.Share
	for i, sh := range shares {
		<-done[i]
		if ok[i] {
			mounted = append(mounted, sh)
		}
	}
	return mounted
}

// mountShare opens sh's channel, serves it, and waits for the agent to
// say it is mounted.
func mountShare(ctx context.Context, conn ssh.Conn, sh api.Share, log *slog.Logger) error {
	b, _ := json.Marshal(sh)
	ch, reqs, err := conn.OpenChannel(sshproto.ChanShare, ssh.Marshal(sshproto.JSONMessage{JSON: string(b)}))
	if err != nil {
		return err
	}
	w, err := share.NewWatcher(sh, log)
	if err != nil {
		// Still worth sharing: only edits on the host go unannounced.
		log.Warn("host changes will not reach watchers in the VM", "folder", sh.HostPath, "err", err)
		w = nil
	}
	if w != nil {
		go w.Run(ctx, func(ctx context.Context, evs []api.ShareEvent) {
			b, _ := json.Marshal(evs)
			if _, _, err := conn.SendRequest(sshproto.ReqShareEvents, false, ssh.Marshal(sshproto.JSONMessage{JSON: string(b)})); err != nil {
				log.Debug("send host changes", "err", err)
			}
		})
	}
	// The agent says why a mount failed on the channel's stderr.
	why := make(chan string, 1)
	go func() {
		b, _ := io.ReadAll(io.LimitReader(ch.Stderr(), 4096))
		why <- strings.TrimSpace(string(b))
	}()
	mounted := make(chan struct{})
	go func() {
		for req := range reqs {
			if req.Type == sshproto.ReqShareMounted {
				close(mounted)
				// Later requests have no meaning; the channel's end does.
				go ssh.DiscardRequests(reqs)
				return
			}
			if req.WantReply {
				req.Reply(false, nil)
			}
		}
	}()
	served := make(chan error, 1)
	go func() {
		srv := &share.Server{Share: sh, Watcher: w}
		served <- srv.Serve(ctx, ch)
	}()
	select {
	case <-mounted:
		log.Info("host folder shared", "folder", sh.HostPath, "readOnly", sh.ReadOnly, "virtiofs", sh.Tag != "")
		go func() {
			if err := <-served; err != nil {
				log.Warn("host folder share ended", "folder", sh.HostPath, "err", err)
			}
		}()
		return nil
	case err := <-served:
		if msg := <-why; msg != "" {
			return errors.New(msg)
		}
		if err == nil {
			err = errors.New("the agent closed the share")
		}
		return err
	case <-time.After(mountTimeout):
		ch.Close()
		return fmt.Errorf("not mounted within %s", mountTimeout)
	case <-ctx.Done():
		ch.Close()
		return ctx.Err()
	}
}
