// Command vmbox is the host CLI: it boots and manages the Linux VM and
// forwards container commands to the agent inside it.
package main

import (
	"os"

	"github.com/vmbox/vmbox/host/cli"
)

func main() {
	os.Exit(cli.Execute(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}
