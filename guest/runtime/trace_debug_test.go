package runtime_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/vmbox/vmbox/guest/runtime"
	"github.com/vmbox/vmbox/guest/runtime/runtimetest"
)

func TestDebugTrace(t *testing.T) {
	if os.Getenv("VMBOX_DEBUG_TRACE") == "" {
		t.Skip("debug only")
	}
	r := newRuntime(t, runtime.Options{Trace: true})
	layer := runtimetest.BusyboxLayer(t)
	dir := t.TempDir()
	for i := 0; i < 8; i++ {
		time.Sleep(200 * time.Millisecond)
		id := randID()
		t0 := time.Now()
		c, err := r.Start(context.Background(), &runtime.Spec{ID: id, Dir: filepath.Join(dir, id), Layers: []string{layer}, Args: []string{"true"}, Hostname: id[:12]})
		if err != nil {
			t.Fatal(err)
		}
		t1 := time.Now()
		c.Wait()
		t2 := time.Now()
		os.RemoveAll(filepath.Join(dir, id))
		t3 := time.Now()
		t.Logf("start %v wait %v rm %v", t1.Sub(t0), t2.Sub(t1), t3.Sub(t2))
	}
}
