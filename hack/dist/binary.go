package main

import (
	"debug/buildinfo"
	"fmt"
)

// checkBinary makes sure path is a Go executable built for t (by the
// GOOS/GOARCH its build information records), so that a mislabelled or
// half-written bin/ never ends up in the wrong package.
func checkBinary(path string, t target) error {
	info, err := buildinfo.ReadFile(path)
	if err != nil {
		return fmt.Errorf("CLI for %s: %w", t, err)
	}
	settings := map[string]string{}
	for _, s := range info.Settings {
		settings[s.Key] = s.Value
	}
	if got := settings["GOOS"] + "/" + settings["GOARCH"]; got != t.String() {
		return fmt.Errorf("CLI %s is built for %s, not %s", path, got, t)
	}
	if info.Path != "github.com/vmbox/vmbox/cmd/vmbox" {
		return fmt.Errorf("CLI %s is %s, not github.com/vmbox/vmbox/cmd/vmbox", path, info.Path)
	}
	return nil
}
