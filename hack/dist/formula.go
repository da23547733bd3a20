package main

import (
	"fmt"
	"io"
	"path/filepath"
	"strings"
)

// formulaName is the Homebrew formula's file name in the output directory.
const formulaName = "vmbox.rb"

// formulaData is what packaging/homebrew/vmbox.rb.tmpl is rendered with.
type formulaData struct {
	Version string
	// Tarballs are the darwin archives, one per CPU.
	Tarballs []formulaTarball
	// OnlyArch, when only one CPU's archive exists, is Homebrew's name for
	// that CPU (:x86_64 or :arm64), so that the formula refuses the other
	// instead of failing for want of a url.
	OnlyArch string
}

type formulaTarball struct {
	Block  string // on_intel or on_arm
	URL    string
	SHA256 string
}

func writeFormula(cfg *config, darwin []artifact) (artifact, error) {
	d := formulaData{Version: cfg.Version}
	for _, a := range darwin {
		block, brewArch := "on_intel", ":x86_64"
		if a.Target.Arch == "arm64" {
			block, brewArch = "on_arm", ":arm64"
		}
		d.Tarballs = append(d.Tarballs, formulaTarball{
			Block: block, URL: strings.TrimSuffix(cfg.URLBase, "/") + "/" + a.Name, SHA256: a.SHA256,
		})
		if len(darwin) == 1 {
			d.OnlyArch = brewArch
		}
	}
	b, err := render(cfg.Packaging, filepath.Join("homebrew", "vmbox.rb.tmpl"), d)
	if err != nil {
		return artifact{}, err
	}
	sum, size, err := writeAtomic(filepath.Join(cfg.OutDir, formulaName), func(w io.Writer) error {
		_, err := w.Write(b)
		return err
	})
	if err != nil {
		return artifact{}, fmt.Errorf("formula: %w", err)
	}
	return artifact{Name: formulaName, Size: size, SHA256: sum}, nil
}
