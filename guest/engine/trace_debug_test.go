package engine_test

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/vmbox/vmbox/guest/api"
	"github.com/vmbox/vmbox/guest/engine"
)

func TestDebugEngineTrace(t *testing.T) {
	if os.Getenv("VMBOX_DEBUG_TRACE") == "" {
		t.Skip("debug only")
	}
	e := newEngine(t, t.TempDir())
	ctx := context.Background()
	for i := 0; i < 10; i++ {
		e.Idle()
		time.Sleep(100 * time.Millisecond)
		t0 := time.Now()
		cr, err := e.Create(ctx, api.ContainerConfig{Image: "busybox", AutoRemove: true, Cmd: []string{"true"}}, nil)
		if err != nil {
			t.Fatal(err)
		}
		t1 := time.Now()
		w, _ := e.WaitChan(ctx, cr.ID, "removed")
		if err := e.Start(ctx, cr.ID); err != nil {
			t.Fatal(err)
		}
		t2 := time.Now()
		<-w
		t3 := time.Now()
		t.Logf("create %v start %v exit+remove %v total %v", t1.Sub(t0), t2.Sub(t1), t3.Sub(t2), t3.Sub(t0))
		_ = engine.Streams{}
	}
}
