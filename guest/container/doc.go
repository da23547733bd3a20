// Package container owns the lowest layer of the vmbox container engine: one
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
// (/proc/self/exe with the hidden argv[0] "vmbox-runtime-init" and an
// environment switch). Every program that links this package must let that
// init take over before doing anything else, first thing in main:
//
//	func main() {
//		if container.IsInit() {
//			container.Init() // never returns
//		}
//		...
//	}
//
// Test binaries need the same in TestMain. (The init code lives in
// internal/nsinit, which depends on the standard library and x/sys only and
// also takes over from its own init function, so a re-exec skips the
// initialisation of whatever packages Go orders after it.)
//
// # Speed
//
// A Go re-exec costs a second Go runtime start-up on top of the kernel
// work. To keep that off the critical path, the Runtime keeps a warm
// helper: an init already cloned into new namespaces (and already inside a
// fresh cgroup: moving a live process between cgroups stalls for an RCU
// grace period), its Go runtime up, blocked on a socket waiting for its
// container's configuration. Starting a container hands the configuration
// and the stdio descriptors to that helper, writes the cgroup limits while
// it mounts the root file system, and starts the next helper in the
// background once the start is over. Exec needs no re-exec at all: it
// forks from a throwaway thread that has joined the container.
//
// Left out for now: seccomp filtering, AppArmor/SELinux, user namespaces,
// the /sys/fs/cgroup mount inside containers, /etc/hosts and
// /etc/resolv.conf management, and host devices for privileged containers.
package container
