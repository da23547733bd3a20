//go:build linux

package boot

import (
	"context"
	"testing"
	"time"
)

// TestSettleDataDisk checks that a shutdown neither mounts a data disk
// nobody asked for nor lets a later WaitDataDisk start one, and that it
// waits for a preparation under way.
func TestSettleDataDisk(t *testing.T) {
	t.Run("not started", func(t *testing.T) {
		s := &System{diskDone: make(chan struct{}), bg: context.Background()}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		s.SettleDataDisk(ctx)
		if ctx.Err() != nil {
			t.Fatal("SettleDataDisk waited for a disk nobody started")
		}
		disk, err := s.WaitDataDisk(ctx)
		if err == nil || disk != nil {
			t.Fatalf("WaitDataDisk after the shutdown = %v, %v; want no disk and an error", disk, err)
		}
	})
	t.Run("under way", func(t *testing.T) {
		s := &System{diskDone: make(chan struct{}), bg: context.Background()}
		s.diskStart.Do(func() {}) // as if startDataDisk had run
		settled := make(chan struct{})
		go func() {
			s.SettleDataDisk(context.Background())
			close(settled)
		}()
		select {
		case <-settled:
			t.Fatal("SettleDataDisk returned while the disk was being prepared")
		case <-time.After(50 * time.Millisecond):
		}
		close(s.diskDone)
		<-settled
	})
}
