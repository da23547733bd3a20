// Package agent is the guest side of the vmbox protocol (see guest/api): an
// SSH server that admits only the instance's key and dispatches each
// operation to the guest itself (version, shell, shutdown) or to the
// container engine.
package agent
