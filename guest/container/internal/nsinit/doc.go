// Package nsinit owns the code that runs inside a container's namespaces:
// the helper init (a re-exec of the program, taken over by IsInit/Init)
// that mounts the overlay root file system, pivots into it, mounts the
// kernel file systems, masks Docker's masked paths, resolves the user and
// the command and execs it; the credential confinement shared with exec;
// and the socket protocol between the init and its parent.
//
// It depends on the standard library and x/sys/unix only, so that its init
// function runs before the initialisation of heavier packages elsewhere in
// the program: a helper init takes over there and never pays for them.
package nsinit
