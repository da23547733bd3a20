// Command vmbox-agent is the guest agent: PID 1 of the vmbox VM, or, in
// local mode, the container engine served on a Unix socket of a Linux host.
package main

import (
	"os"

	"github.com/vmbox/vmbox/guest/agent"
	"github.com/vmbox/vmbox/guest/container"
)

func main() {
	// The container runtime re-executes this binary as each container's
	// init; that process must do nothing else first.
	if container.IsInit() {
		container.Init()
	}
	os.Exit(agent.Main(os.Args[1:], os.Stderr))
}
