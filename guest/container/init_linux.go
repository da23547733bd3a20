package container

import "github.com/vmbox/vmbox/guest/container/internal/nsinit"

// IsInit reports whether this process is a helper init started by the
// runtime (a re-exec of the program through /proc/self/exe with a hidden
// argv[0] and environment switch). When it is, the program must call Init
// before doing anything else.
func IsInit() bool { return nsinit.IsInit() }

// Init runs the helper init: it waits for its container's configuration,
// sets up the root file system and the process, and execs the container's
// command. It never returns. Call it only when IsInit is true.
func Init() { nsinit.Init() }
