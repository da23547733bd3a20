// Package boot owns what the guest agent does as the VM's init: the PID 1
// process that reaps orphans and starts the agent (Init), and the agent's
// boot sequence (Run): kernel file systems, cgroup2, kernel modules, clock,
// hostname, networking (static or DHCP), the data disk, CPU onlining,
// vsock discovery, the power button and power-off.
//
// It reads the per-instance document the host writes (guest/api/vmconfig).
// The package is Linux-only and only meant to run inside the vmbox VM.
//
// # Process layout in the VM
//
// The kernel starts /init (the agent binary) as PID 1. Init keeps PID 1 tiny:
// it mounts /dev and /proc, re-executes the same binary as its only child
// (the agent proper, marked by an environment variable), and then does
// nothing but reap and forward shutdown signals. See init_linux.go for why
// this split, rather than a reaper inside the agent, is what keeps exit
// statuses of the agent's own children safe.
package boot
