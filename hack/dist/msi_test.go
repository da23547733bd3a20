package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/vmbox/vmbox/vmimage"
)

// msiTable exports one table of an MSI with msiinfo: its rows, each a map
// from column name to value.
func msiTable(t *testing.T, msi, table string) []map[string]string {
	t.Helper()
	out, err := exec.Command("msiinfo", "export", msi, table).Output()
	if err != nil {
		t.Fatalf("msiinfo export %s: %v", table, err)
	}
	// Lines: column names, column types, table name and keys, then rows.
	lines := strings.Split(strings.TrimRight(strings.ReplaceAll(string(out), "\r\n", "\n"), "\n"), "\n")
	if len(lines) < 3 {
		t.Fatalf("msiinfo export %s printed %q", table, out)
	}
	cols := strings.Split(lines[0], "\t")
	var rows []map[string]string
	for _, l := range lines[3:] {
		vals := strings.Split(l, "\t")
		row := map[string]string{}
		for i, c := range cols {
			if i < len(vals) {
				row[c] = vals[i]
			}
		}
		rows = append(rows, row)
	}
	return rows
}

// TestWindowsMSI builds the Windows installer from the real windows/amd64
// CLI and amd64 guest image and reads it back with msitools: the files,
// where they install, the PATH entry, the upgrade identity, and the bytes
// of every file as msiextract unpacks them.
func TestWindowsMSI(t *testing.T) {
	t.Parallel()
	requireTools(t, "apt-get install wixl msitools, or make deps", "wixl", "msibuild", "msiinfo", "msiextract")
	imgDir := builtImage(t, "amd64")
	cfg := testConfig(t)
	lock, err := vmimage.ReadLock(cfg.LockPath)
	if err != nil {
		t.Fatal(err)
	}
	img, err := loadImage(imgDir, "amd64", lock, "")
	if err != nil {
		t.Fatal(err)
	}
	tg := target{"windows", "amd64"}
	exe := cliFor(t, tg)
	cfg.Version = "v1.4.2-7-g0123abc"
	art, err := buildMSI(t.Context(), cfg, tg, exe, img)
	if err != nil {
		t.Fatal(err)
	}
	msi := filepath.Join(cfg.OutDir, art.Name)
	if art.Name != "vmbox-v1.4.2-7-g0123abc-windows-amd64.msi" || art.SHA256 != sha256File(t, msi) {
		t.Fatalf("artifact %+v does not describe %s", art, msi)
	}

	tables, err := exec.Command("msiinfo", "tables", msi).Output()
	if err != nil {
		t.Fatalf("msiinfo tables: %v", err)
	}
	for _, want := range []string{"File", "Component", "Directory", "Environment", "Upgrade", "InstallExecuteSequence"} {
		if !strings.Contains("\n"+string(tables), "\n"+want+"\n") {
			t.Errorf("msiinfo tables lacks %s:\n%s", want, tables)
		}
	}
	listing, _ := exec.Command("msiinfo", "export", msi, "File").Output()
	t.Logf("msiinfo export %s File:\n%s", art.Name, listing)

	// Every file's install path, from the Directory and Component tables.
	dirs := map[string]map[string]string{}
	for _, r := range msiTable(t, msi, "Directory") {
		dirs[r["Directory"]] = r
	}
	var dirPath func(id string) string
	dirPath = func(id string) string {
		r, ok := dirs[id]
		if !ok {
			t.Fatalf("no directory %q", id)
		}
		switch id {
		case "TARGETDIR":
			return ""
		case "ProgramFiles64Folder":
			return "ProgramFiles64"
		}
		name := r["DefaultDir"]
		if _, long, ok := strings.Cut(name, "|"); ok {
			name = long
		}
		return dirPath(r["Directory_Parent"]) + `\` + name
	}
	compDir := map[string]string{}
	for _, r := range msiTable(t, msi, "Component") {
		compDir[r["Component"]] = r["Directory_"]
	}
	installed := map[string]string{} // path -> size
	for _, r := range msiTable(t, msi, "File") {
		name := r["FileName"]
		if short, long, ok := strings.Cut(name, "|"); ok {
			if !isShortName(short) {
				t.Errorf("File %s: %q is not an 8.3 name", r["File"], short)
			}
			name = long
		} else if !isShortName(name) {
			t.Errorf("File %s: %q is a long name without a short one", r["File"], name)
		}
		installed[dirPath(compDir[r["Component_"]])+`\`+name] = r["FileSize"]
	}
	size := func(p string) string {
		st, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		return strconv.FormatInt(st.Size(), 10)
	}
	want := map[string]string{
		`ProgramFiles64\vmbox\bin\vmbox.exe`:                   size(exe),
		`ProgramFiles64\vmbox\share\vmbox\amd64\kernel`:        size(img.path("kernel")),
		`ProgramFiles64\vmbox\share\vmbox\amd64\initrd.img`:    size(img.path("initrd.img")),
		`ProgramFiles64\vmbox\share\vmbox\amd64\manifest.json`: size(img.path("manifest.json")),
	}
	for p, s := range want {
		if installed[p] != s {
			t.Errorf("%s: installed with size %q, want %s (all: %v)", p, installed[p], s, installed)
		}
	}
	if _, ok := installed[`ProgramFiles64\vmbox\NOTICE.txt`]; !ok || len(installed) != len(want)+1 {
		t.Errorf("installed files %v, want %v and NOTICE.txt", installed, want)
	}

	// bin on the system PATH, owned by the component that installs vmbox.exe.
	env := msiTable(t, msi, "Environment")
	if len(env) != 1 || env[0]["Name"] != "=-*PATH" || env[0]["Value"] != "[~];[BINDIR]" || compDir[env[0]["Component_"]] != "BINDIR" {
		t.Errorf("Environment table %v, want one =-*PATH row appending [BINDIR] from the vmbox.exe component", env)
	}
	seq := map[string]string{}
	for _, r := range msiTable(t, msi, "InstallExecuteSequence") {
		seq[r["Action"]] = r["Sequence"]
	}
	for _, a := range []string{"WriteEnvironmentStrings", "RemoveEnvironmentStrings", "FindRelatedProducts", "RemoveExistingProducts"} {
		if seq[a] == "" {
			t.Errorf("InstallExecuteSequence lacks %s: %v", a, seq)
		}
	}

	props := map[string]string{}
	for _, r := range msiTable(t, msi, "Property") {
		props[r["Property"]] = r["Value"]
	}
	if props["UpgradeCode"] != upgradeCode || props["ProductVersion"] != "1.4.2.7" || props["VMBOX_VERSION"] != cfg.Version || props["ALLUSERS"] != "1" {
		t.Errorf("properties %v", props)
	}
	var upgrade, downgrade bool
	for _, r := range msiTable(t, msi, "Upgrade") {
		if r["UpgradeCode"] != upgradeCode {
			t.Errorf("Upgrade row for another product: %v", r)
		}
		switch r["ActionProperty"] {
		case "WIX_UPGRADE_DETECTED":
			upgrade = r["VersionMax"] == "1.4.2.7" && r["Attributes"] == "513"
		case "WIX_DOWNGRADE_DETECTED":
			downgrade = r["VersionMin"] == "1.4.2.7"
		}
	}
	if !upgrade || !downgrade {
		t.Errorf("Upgrade table %v: want an upgrade row up to and including 1.4.2.7 and a downgrade row", msiTable(t, msi, "Upgrade"))
	}

	lc := msiTable(t, msi, "LaunchCondition")
	if len(lc) != 1 || lc[0]["Condition"] != "NOT WIX_DOWNGRADE_DETECTED" {
		t.Errorf("LaunchCondition %v: want the downgrade refusal", lc)
	}

	// The bytes that install are the bytes that went in.
	x := t.TempDir()
	if out, err := exec.Command("msiextract", "-C", x, msi).CombinedOutput(); err != nil {
		t.Fatalf("msiextract: %v: %s", err, out)
	}
	for rel, src := range map[string]string{
		"vmbox/bin/vmbox.exe":                   exe,
		"vmbox/share/vmbox/amd64/kernel":        img.path("kernel"),
		"vmbox/share/vmbox/amd64/initrd.img":    img.path("initrd.img"),
		"vmbox/share/vmbox/amd64/manifest.json": img.path("manifest.json"),
	} {
		got := filepath.Join(x, filepath.FromSlash(rel))
		if _, err := os.Stat(got); err != nil {
			t.Errorf("msiextract gave no %s: %v", rel, err)
			continue
		}
		if sha256File(t, got) != sha256File(t, src) {
			t.Errorf("%s in the MSI differs from %s", rel, src)
		}
	}
	notice, err := os.ReadFile(filepath.Join(x, "vmbox", "NOTICE.txt"))
	if err != nil || !strings.Contains(string(notice), "linux-image-") || !strings.Contains(string(notice), "\r\n") {
		t.Errorf("NOTICE.txt (%v) lacks the kernel package or Windows line ends:\n%s", err, notice)
	}
}
