// Command vmbox-agent is the guest agent: PID 1 of the vmbox VM, or, in
// local mode, the container engine served on a Unix socket of a Linux host.
package main

import (
	"os"

	"github.com/vmbox/vmbox/guest/agent"
)

func main() {
	os.Exit(agent.Main(os.Args[1:], os.Stderr))
}
