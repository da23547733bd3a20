package engine_test

import (
	"testing"

	"github.com/vmbox/vmbox/guest/api"
	"github.com/vmbox/vmbox/guest/engine"
)

// TestCommit: an image of a container's changes holds its new files, not
// the ones it deleted (whiteouts), and takes --change instructions.
func TestCommit(t *testing.T) {
	e := newEngine(t, t.TempDir())
	created, err := e.Create(within(t), api.ContainerConfig{Image: "busybox", Cmd: []string{"sh", "-c", "echo made > /made; rm /bin/cat; mkdir -p /d/sub; echo x > /d/sub/f"}}, engine.PullOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Start(within(t), created.ID); err != nil {
		t.Fatal(err)
	}
	if w, err := e.Wait(within(t), created.ID, ""); err != nil || w.StatusCode != 0 {
		t.Fatalf("wait: %+v %v", w, err)
	}
	img, err := e.Commit(created.ID, engine.CommitOptions{Tags: []string{"committed:v1"}, Changes: []string{`CMD ["sh", "-c", "echo $GREETING; test -e /bin/cat || echo no-cat"]`, "ENV GREETING=hello", "LABEL a=b"}})
	if err != nil {
		t.Fatal(err)
	}
	if img.Config.Labels["a"] != "b" || len(img.Layers) != 2 {
		t.Errorf("committed image: %+v", img)
	}
	o := mustRunIt(t, e, api.ContainerConfig{Image: "committed:v1", AutoRemove: true})
	if o.stdout != "hello\nno-cat\n" {
		t.Errorf("the committed image ran: %+v", o)
	}
	o = mustRunIt(t, e, api.ContainerConfig{Image: "committed:v1", Cmd: []string{"sh", "-c", "head -c 5 /made; cat /d/sub/f 2>&1 || busybox cat /d/sub/f"}, AutoRemove: true})
	if o.stdout != "made\nx\n" {
		t.Errorf("files of the committed image: %+v", o)
	}
	if _, err := e.Commit(created.ID, engine.CommitOptions{Changes: []string{"RUN true"}}); err == nil {
		t.Error("a RUN change was taken")
	}
}
