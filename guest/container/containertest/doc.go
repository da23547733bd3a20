// Package containertest owns what the tests and benchmarks of
// guest/container and guest/engine share: a real image layer directory
// holding Debian's static busybox with its applet links and minimal /etc
// files; the checks that skip those tests where they cannot run (not root,
// no overlayfs, no busybox); bounded waits on a container's output; the
// clean-up of a test's cgroups; and the OCI bundles and runs that compare
// vmbox with crun and runc.
package containertest
