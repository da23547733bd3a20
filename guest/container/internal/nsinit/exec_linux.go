package nsinit

import (
	"errors"
	"time"

	"golang.org/x/sys/unix"
)

// busyRetryFor bounds how long an exec that fails with ETXTBSY (the file
// is open for writing) is tried again. A writer that holds the file only
// for a moment is common: the agent replays a host folder's changes into
// the VM for inotify watchers by opening the changed file for writing, so
// a script written on the host and run at once can meet that descriptor;
// so can a build tool that is closing what it just wrote. A file kept open
// for writing still fails, after this long.
const busyRetryFor = time.Second

// execRetryingBusy calls exec (which does not return when it succeeds)
// until it fails with something other than ETXTBSY or busyRetryFor has
// passed, and returns its last error.
func execRetryingBusy(exec func() error) error {
	deadline := time.Now().Add(busyRetryFor)
	wait := time.Millisecond
	for {
		err := exec()
		if !errors.Is(err, unix.ETXTBSY) || time.Now().After(deadline) {
			return err
		}
		time.Sleep(wait)
		wait = min(2*wait, 50*time.Millisecond)
	}
}
