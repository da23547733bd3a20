// Package containertest builds what the tests of guest/container and
// guest/engine run containers on: a real image layer directory holding
// Debian's static busybox with its applet links and minimal /etc files, and
// the checks that skip those tests where they cannot run (not root, no
// overlayfs, no busybox).
package containertest
