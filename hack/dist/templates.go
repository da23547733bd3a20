package main

import (
	"bytes"
	"encoding/xml"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"text/template"
)

// templateFuncs quote values for the languages the templates are in.
var templateFuncs = template.FuncMap{
	// xml escapes text for an XML attribute or element.
	"xml": func(s string) (string, error) {
		var b strings.Builder
		if err := xml.EscapeText(&b, []byte(s)); err != nil {
			return "", err
		}
		return b.String(), nil
	},
	// ruby makes a double-quoted Ruby string literal.
	"ruby": func(s string) string {
		r := strings.NewReplacer(`\`, `\\`, `"`, `\"`, `#`, `\#`)
		return `"` + r.Replace(s) + `"`
	},
	// sh makes a single-quoted POSIX shell word.
	"sh": func(s string) string {
		return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
	},
}

// render executes the template file name under the packaging directory.
func render(packaging, name string, data any) ([]byte, error) {
	path := filepath.Join(packaging, name)
	src, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("template: %w", err)
	}
	t, err := template.New(name).Funcs(templateFuncs).Option("missingkey=error").Parse(string(src))
	if err != nil {
		return nil, fmt.Errorf("template %s: %w", path, err)
	}
	var b bytes.Buffer
	if err := t.Execute(&b, data); err != nil {
		return nil, fmt.Errorf("template %s: %w", path, err)
	}
	return b.Bytes(), nil
}

// packageData is what the per-target templates (install.sh, NOTICE, the
// wix source) are rendered with.
type packageData struct {
	Version string
	OS      string
	Arch    string
	QEMU    string // the QEMU system emulator for the guest architecture
	Kernel  string // the guest kernel's version
	// Packages are the Debian packages the guest image is made of.
	Packages []packageLine
}

type packageLine struct{ Name, Version, Filename string }

func newPackageData(version string, t target, img *guestImage) packageData {
	d := packageData{
		Version: version, OS: t.OS, Arch: t.Arch,
		QEMU:   qemuBinary(t.Arch),
		Kernel: img.Manifest.KernelVersion,
	}
	for _, p := range img.Manifest.Packages {
		d.Packages = append(d.Packages, packageLine{p.Name, p.Version, p.Filename})
	}
	return d
}

// qemuBinary mirrors host/driver/qemu's choice of emulator per guest.
func qemuBinary(arch string) string {
	if arch == "arm64" {
		return "qemu-system-aarch64"
	}
	return "qemu-system-x86_64"
}
