// Package layout checks the import rule the architecture rests on: host code
// (the host packages and the host CLI's main) reaches the guest only through
// its contract, guest/api and its subpackages, on every host OS it builds for.
// A host package importing the engine, the boot code or the image builder
// would tie the host binary to Linux-only code and let the two sides drift.
package layout

import (
	"encoding/json"
	"errors"
	"io"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

const module = "github.com/vmbox/vmbox/"

// allowed reports whether a host package may import path.
func allowed(path string) bool {
	if !strings.HasPrefix(path, module) {
		return true
	}
	rel := strings.TrimPrefix(path, module)
	switch {
	case rel == "guest/api" || strings.HasPrefix(rel, "guest/api/"):
		return true
	case strings.HasPrefix(rel, "guest/"), rel == "vmimage" || strings.HasPrefix(rel, "vmimage/"):
		return false
	}
	return true
}

func TestAllowed(t *testing.T) {
	for path, want := range map[string]bool{
		"fmt":                          true,
		"golang.org/x/crypto/ssh":      true,
		module + "guest/api":           true,
		module + "guest/api/vmconfig":  true,
		module + "guest/apiextra":      false,
		module + "guest/boot":          false,
		module + "guest/agent":         false,
		module + "vmimage":             false,
		module + "vmimage/cmd/vmimage": false,
		module + "internal/cpio":       true,
		module + "host/driver/qemu":    true,
		"example.com/guest/boot":       true,
	} {
		if got := allowed(path); got != want {
			t.Errorf("allowed(%q) = %v, want %v", path, got, want)
		}
	}
}

type listedPackage struct {
	ImportPath   string
	Imports      []string
	TestImports  []string
	XTestImports []string
}

// TestHostImportsOnlyGuestAPI lists the host packages' imports (tests
// included) for each host OS and refuses any guest package but the contract.
func TestHostImportsOnlyGuestAPI(t *testing.T) {
	if _, err := exec.LookPath("go"); err != nil {
		t.Skip("the go command is not on PATH")
	}
	_, file, _, _ := runtime.Caller(0)
	root := filepath.Join(filepath.Dir(file), "..", "..")
	for _, goos := range []string{"linux", "darwin", "windows"} {
		cmd := exec.Command("go", "list", "-e", "-json=ImportPath,Imports,TestImports,XTestImports", "./host/...", "./cmd/vmbox")
		cmd.Dir = root
		cmd.Env = append(cmd.Environ(), "GOOS="+goos, "CGO_ENABLED=1")
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("GOOS=%s go list: %v", goos, err)
		}
		dec := json.NewDecoder(strings.NewReader(string(out)))
		n := 0
		for {
			var p listedPackage
			if err := dec.Decode(&p); errors.Is(err, io.EOF) {
				break
			} else if err != nil {
				t.Fatalf("decode go list output: %v", err)
			}
			n++
			for _, imports := range [][]string{p.Imports, p.TestImports, p.XTestImports} {
				for _, imp := range imports {
					if !allowed(imp) {
						t.Errorf("GOOS=%s: %s imports %s; host code may import only guest/api and its subpackages from guest/ (and nothing from vmimage/)", goos, p.ImportPath, imp)
					}
				}
			}
		}
		if n < 5 {
			t.Fatalf("GOOS=%s: go list found only %d host packages", goos, n)
		}
	}
}
