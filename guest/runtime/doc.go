// Package runtime owns the lowest layer of the vmbox container engine: one
// container process started in fresh mount, pid, uts, ipc (and usually net)
// namespaces on an overlayfs root built from read-only image layers, confined
// by a cgroup (v2 in the VM, v1 on hybrid hosts), with Docker's default
// capability set, masked /proc paths and no_new_privs; exec of further
// processes into a running container; and the re-exec'd init that performs
// the set-up from inside the namespaces.
//
// # Init hook
//
// The set-up inside the namespaces runs in a re-exec of the current binary
// (/proc/self/exe). Every program that links this package must let that
// init take over before doing anything else. The package does this by
// itself from an init function (so that the re-exec skips the
// initialisation of the rest of the program), and programs must also call
// the hook first thing in main, which is what makes the contract explicit
// and keeps working if the package's init order ever changes:
//
//	func main() {
//		if runtime.IsInit() {
//			runtime.Init() // never returns
//		}
//		...
//	}
//
// Test binaries need the same in TestMain.
//
// # Speed
//
// A Go re-exec costs a second Go runtime start-up on top of the kernel
// work. To keep that off the critical path, the Runtime keeps a warm
// helper: an init already cloned into new namespaces, its Go runtime up,
// blocked on a socket waiting for its container's configuration. Starting a
// container hands the configuration (and the stdio descriptors) to that
// helper, moves it into the container's cgroup while it mounts the root
// filesystem, and starts the next helper in the background.
//
// Left out for now: seccomp filtering, AppArmor/SELinux, user namespaces,
// the /sys/fs/cgroup mount inside containers, /etc/hosts and
// /etc/resolv.conf management, and host devices for privileged containers.
package runtime
