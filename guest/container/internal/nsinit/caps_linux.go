package nsinit

import (
	"fmt"
	"unsafe"

	"golang.org/x/sys/unix"
)

// defaultCaps is Docker's default capability set: CHOWN, DAC_OVERRIDE,
// FOWNER, FSETID, KILL, SETGID, SETUID, SETPCAP, NET_BIND_SERVICE, NET_RAW,
// SYS_CHROOT, MKNOD, AUDIT_WRITE, SETFCAP (CapEff 00000000a80425fb).
const defaultCaps uint64 = 1<<unix.CAP_CHOWN | 1<<unix.CAP_DAC_OVERRIDE | 1<<unix.CAP_FOWNER |
	1<<unix.CAP_FSETID | 1<<unix.CAP_KILL | 1<<unix.CAP_SETGID | 1<<unix.CAP_SETUID |
	1<<unix.CAP_SETPCAP | 1<<unix.CAP_NET_BIND_SERVICE | 1<<unix.CAP_NET_RAW |
	1<<unix.CAP_SYS_CHROOT | 1<<unix.CAP_MKNOD | 1<<unix.CAP_AUDIT_WRITE | 1<<unix.CAP_SETFCAP

// The functions below change the credentials of the calling thread only.
// They run on a locked thread right before that thread execs (the init) or
// forks the process that execs (exec into a container): execve keeps only
// the calling thread, and fork copies the calling thread's credentials, so
// the rest of the Go process is unaffected and needs no all-threads syscall.

// dropBounding removes every capability outside keep from the calling
// thread's bounding set and clears its ambient set.
func dropBounding(keep uint64) error {
	for c := 0; c < 64; c++ {
		if keep&(1<<c) != 0 {
			continue
		}
		if err := unix.Prctl(unix.PR_CAPBSET_DROP, uintptr(c), 0, 0, 0); err != nil {
			if err == unix.EINVAL { // past the kernel's last capability
				break
			}
			return fmt.Errorf("drop capability %d from the bounding set: %w", c, err)
		}
	}
	if err := unix.Prctl(unix.PR_CAP_AMBIENT, unix.PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0); err != nil && err != unix.EINVAL {
		return fmt.Errorf("clear ambient capabilities: %w", err)
	}
	return nil
}

// setThreadCreds switches the calling thread to the user. Going from root
// to another uid clears the thread's permitted and effective capabilities,
// which is what Docker gives non-root users.
func setThreadCreds(u User) error {
	var gp unsafe.Pointer
	groups := make([]uint32, len(u.Groups))
	for i, g := range u.Groups {
		groups[i] = uint32(g)
	}
	if len(groups) > 0 {
		gp = unsafe.Pointer(&groups[0])
	}
	if _, _, e := unix.RawSyscall(unix.SYS_SETGROUPS, uintptr(len(groups)), uintptr(gp), 0); e != 0 {
		return fmt.Errorf("setgroups: %w", e)
	}
	if _, _, e := unix.RawSyscall(unix.SYS_SETRESGID, uintptr(u.GID), uintptr(u.GID), uintptr(u.GID)); e != 0 {
		return fmt.Errorf("setgid %d: %w", u.GID, e)
	}
	if _, _, e := unix.RawSyscall(unix.SYS_SETRESUID, uintptr(u.UID), uintptr(u.UID), uintptr(u.UID)); e != 0 {
		return fmt.Errorf("setuid %d: %w", u.UID, e)
	}
	return nil
}

// setThreadCaps sets the calling thread's effective and permitted sets to
// caps and empties the inheritable set (as Docker does since 20.10).
func setThreadCaps(caps uint64) error {
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	// Never ask for more than the thread holds (a host may withhold some
	// capabilities from root; capset refuses to add them).
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		return fmt.Errorf("capget: %w", err)
	}
	caps &= uint64(data[0].Permitted) | uint64(data[1].Permitted)<<32
	data[0].Inheritable, data[1].Inheritable = 0, 0
	data[0].Effective, data[0].Permitted = uint32(caps), uint32(caps)
	data[1].Effective, data[1].Permitted = uint32(caps>>32), uint32(caps>>32)
	if err := unix.Capset(&hdr, &data[0]); err != nil {
		return fmt.Errorf("capset: %w", err)
	}
	return nil
}

// allCaps returns the mask of every capability the kernel knows.
func allCaps() uint64 {
	var m uint64
	for c := 0; c < 64; c++ {
		if _, err := unix.PrctlRetInt(unix.PR_CAPBSET_READ, uintptr(c), 0, 0, 0); err != nil {
			break
		}
		m |= 1 << c
	}
	return m
}

// ConfineThread gives the calling thread the privileges of a container
// process for user u: the bounding set cut to Docker's defaults (unless
// privileged), the user's ids, and no_new_privs (unless privileged).
func ConfineThread(u User, privileged bool) error {
	keep := defaultCaps
	if privileged {
		keep = allCaps()
	}
	if err := dropBounding(keep); err != nil {
		return err
	}
	if err := setThreadCreds(u); err != nil {
		return err
	}
	if u.UID == 0 {
		if err := setThreadCaps(keep); err != nil {
			return err
		}
	}
	if !privileged {
		if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
			return fmt.Errorf("set no_new_privs: %w", err)
		}
	}
	return nil
}
