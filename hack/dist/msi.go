package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
)

// upgradeCode identifies vmbox to Windows Installer across all versions;
// changing it would make a new MSI install beside an old one instead of
// replacing it.
const upgradeCode = "{38D02E4E-BE8F-4C07-A37F-BA806DF47EE2}"

// pathComponent owns vmbox.exe and the PATH entry, so PATH changes exactly
// when the executable is installed or removed.
const pathComponent = "VmboxExe"

func msiName(version string, t target) string {
	return fmt.Sprintf("vmbox-%s-%s-%s.msi", version, t.OS, t.Arch)
}

var (
	// releaseRe tells a release version (v1, v1.2, 1.2.3...) from a bare
	// commit from git describe --always, which may start with digits.
	releaseRe  = regexp.MustCompile(`^(v\d|\d+\.\d)`)
	describeRe = regexp.MustCompile(`^v?(\d+)(?:\.(\d+))?(?:\.(\d+))?(?:-(\d+)-g[0-9a-f]+)?`)
)

// msiVersion turns a release version into a Windows Installer
// ProductVersion (major.minor.build[.revision], at most 255.255.65535).
// "v1.2.3" gives 1.2.3 and git describe's "v1.2.3-4-gabcdef" 1.2.3.4;
// anything else (a bare commit, even one that starts with digits) gives
// 0.0.0. Windows
// Installer compares only the first three fields.
func msiVersion(v string) (string, error) {
	m := describeRe.FindStringSubmatch(v)
	if m == nil || !releaseRe.MatchString(v) {
		return "0.0.0", nil
	}
	limits := []int{255, 255, 65535, 65535}
	var fields []string
	for i, s := range m[1:] {
		if s == "" {
			if i == 3 {
				break
			}
			s = "0"
		}
		n, err := strconv.Atoi(s)
		if err != nil || n > limits[i] {
			return "", fmt.Errorf("version %q does not fit a Windows Installer version (at most 255.255.65535)", v)
		}
		fields = append(fields, strconv.Itoa(n))
	}
	return strings.Join(fields, "."), nil
}

// msiFile is one file of the guest image in the wix source.
type msiFile struct{ ID, Name, Source string }

type msiData struct {
	packageData
	ProductVersion string
	UpgradeCode    string
	PathComponent  string
	Exe, Notice    string
	Image          []msiFile
}

// msiTools are the msitools programs buildMSI runs.
var msiTools = []string{"wixl", "msibuild"}

func lookMSITools() error {
	for _, t := range msiTools {
		if _, err := exec.LookPath(t); err != nil {
			return fmt.Errorf("%s not found: the Windows installer is built with msitools (apt-get install wixl msitools, or make deps)", t)
		}
	}
	return nil
}

// msiArch is wixl's -a for a target architecture.
func msiArch(arch string) (string, error) {
	if arch == "amd64" {
		return "x64", nil
	}
	return "", fmt.Errorf("wixl cannot build an installer for windows/%s", arch)
}

func buildMSI(ctx context.Context, cfg *config, t target, exe string, img *guestImage) (artifact, error) {
	if err := lookMSITools(); err != nil {
		return artifact{}, err
	}
	arch, err := msiArch(t.Arch)
	if err != nil {
		return artifact{}, err
	}
	pv, err := msiVersion(cfg.Version)
	if err != nil {
		return artifact{}, err
	}
	work, err := os.MkdirTemp("", "vmbox-msi-")
	if err != nil {
		return artifact{}, err
	}
	defer os.RemoveAll(work)

	pd := newPackageData(cfg.Version, t, img)
	notice, err := render(cfg.Packaging, "NOTICE.tmpl", pd)
	if err != nil {
		return artifact{}, err
	}
	noticePath := filepath.Join(work, "NOTICE.txt")
	if err := os.WriteFile(noticePath, crlf(notice), 0o644); err != nil {
		return artifact{}, err
	}
	// wixl takes only relative Source paths: every input is linked into
	// the work directory, which wixl runs in.
	link := func(src, name string) (string, error) {
		abs, err := filepath.Abs(src)
		if err != nil {
			return "", err
		}
		if err := os.Symlink(abs, filepath.Join(work, name)); err != nil {
			return "", err
		}
		return name, nil
	}
	exeName, err := link(exe, "vmbox.exe")
	if err != nil {
		return artifact{}, err
	}
	d := msiData{
		packageData: pd, ProductVersion: pv, UpgradeCode: upgradeCode, PathComponent: pathComponent,
		Exe: exeName, Notice: "NOTICE.txt",
	}
	for _, f := range imageFiles {
		id := "Image_" + t.Arch + "_" + strings.NewReplacer(".", "_", "-", "_").Replace(f)
		src, err := link(img.path(f), id)
		if err != nil {
			return artifact{}, err
		}
		d.Image = append(d.Image, msiFile{ID: id, Name: f, Source: src})
	}
	wxs, err := render(cfg.Packaging, filepath.Join("windows", "vmbox.wxs.tmpl"), d)
	if err != nil {
		return artifact{}, err
	}
	if err := os.WriteFile(filepath.Join(work, "vmbox.wxs"), wxs, 0o644); err != nil {
		return artifact{}, err
	}
	if err := runTool(ctx, work, "wixl", "-a", arch, "-o", "vmbox.msi", "vmbox.wxs"); err != nil {
		return artifact{}, err
	}
	msi := filepath.Join(work, "vmbox.msi")
	files := append([]msiFile{{ID: "vmbox.exe", Name: "vmbox.exe"}, {ID: "NOTICE.txt", Name: "NOTICE.txt"}}, d.Image...)
	fixups, err := msiFixups(pv, files)
	if err != nil {
		return artifact{}, err
	}
	if err := runTool(ctx, work, "msibuild", append([]string{"vmbox.msi"}, fixups...)...); err != nil {
		return artifact{}, err
	}

	name := msiName(cfg.Version, t)
	sum, size, err := writeAtomic(filepath.Join(cfg.OutDir, name), func(w io.Writer) error {
		f, err := os.Open(msi)
		if err != nil {
			return err
		}
		defer f.Close()
		_, err = io.Copy(w, f)
		return err
	})
	if err != nil {
		return artifact{}, err
	}
	return artifact{Name: name, Size: size, SHA256: sum, Target: t}, nil
}

// msiFixups are msibuild arguments that add what wixl 0.101 cannot
// compile: an Environment table that appends the bin directory to the
// system PATH on install and takes it out on removal; an upgrade row that
// includes the same version (WiX's AllowSameVersionUpgrades), so that
// reinstalling a rebuilt version replaces the old one instead of adding a
// second entry to Programs and Features; and the short|long form of file
// names that are not valid 8.3 names, as the File table requires.
func msiFixups(productVersion string, files []msiFile) ([]string, error) {
	var q []string
	seen := map[string]string{}
	for _, f := range files {
		short := f.Name
		if !isShortName(f.Name) {
			short = shortName(f.Name)
			q = append(q, "-q", "UPDATE `File` SET `FileName` = '"+short+"|"+f.Name+"' WHERE `File` = '"+f.ID+"'")
		}
		if other, dup := seen[strings.ToUpper(short)]; dup {
			return nil, fmt.Errorf("installer files %s and %s have the same short name %s", other, f.Name, short)
		}
		seen[strings.ToUpper(short)] = f.Name
	}
	return append(q,
		"-q", "CREATE TABLE `Environment` (`Environment` CHAR(72) NOT NULL, `Name` CHAR(255) NOT NULL LOCALIZABLE, "+
			"`Value` CHAR(255) LOCALIZABLE, `Component_` CHAR(72) NOT NULL PRIMARY KEY `Environment`)",
		// = set on install, - remove on uninstall, * system (machine) variable;
		// [~]; appends to the existing value with a ; separator.
		"-q", "INSERT INTO `Environment` (`Environment`, `Name`, `Value`, `Component_`) "+
			"VALUES ('VmboxPath', '=-*PATH', '[~];[BINDIR]', '"+pathComponent+"')",
		"-q", "DELETE FROM `Upgrade` WHERE `ActionProperty` = 'WIX_UPGRADE_DETECTED'",
		// 513 = msidbUpgradeAttributesMigrateFeatures | msidbUpgradeAttributesVersionMaxInclusive.
		"-q", "INSERT INTO `Upgrade` (`UpgradeCode`, `VersionMax`, `Attributes`, `ActionProperty`) "+
			"VALUES ('"+upgradeCode+"', '"+productVersion+"', 513, 'WIX_UPGRADE_DETECTED')",
	), nil
}

// isShortName reports whether name is a valid 8.3 file name.
func isShortName(name string) bool {
	base, ext, _ := strings.Cut(name, ".")
	if base == "" || len(base) > 8 || len(ext) > 3 || strings.Contains(ext, ".") {
		return false
	}
	return strings.IndexFunc(base+ext, func(r rune) bool { return !shortNameChar(r) }) < 0
}

func shortNameChar(r rune) bool {
	return r >= 'A' && r <= 'Z' || r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || strings.ContainsRune("_-~!#$%&'()@^{}", r)
}

// shortName makes the 8.3 alias of a long name the way Windows does for
// the first such name in a directory (manifest.json -> MANIFE~1.JSO);
// msiFixups refuses a collision.
func shortName(name string) string {
	base, ext := name, ""
	if i := strings.LastIndexByte(name, '.'); i > 0 {
		base, ext = name[:i], name[i+1:]
	}
	clean := func(s string, n int) string {
		var b strings.Builder
		for _, r := range strings.ToUpper(s) {
			if shortNameChar(r) && r != '~' && b.Len() < n {
				b.WriteRune(r)
			}
		}
		return b.String()
	}
	short := clean(base, 6) + "~1"
	if e := clean(ext, 3); e != "" {
		short += "." + e
	}
	return short
}

// runTool runs an msitools program and turns a failure into one error
// with its output (wixl reports problems on stderr and by exit status).
func runTool(ctx context.Context, dir, name string, args ...string) error {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	if err == nil {
		return nil
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return fmt.Errorf("%s failed (%v): %s", name, err, strings.TrimSpace(out.String()))
	}
	return fmt.Errorf("%s: %w", name, err)
}

// crlf gives text Windows line endings, for files read with Notepad.
func crlf(b []byte) []byte {
	return bytes.ReplaceAll(bytes.ReplaceAll(b, []byte("\r\n"), []byte("\n")), []byte("\n"), []byte("\r\n"))
}
