package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// sumsName is the checksum file, in the format `sha256sum -c` reads.
const sumsName = "SHA256SUMS"

func writeSums(dir string, arts []artifact) (artifact, error) {
	sorted := append([]artifact(nil), arts...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].Name < sorted[j].Name })
	var b strings.Builder
	for _, a := range sorted {
		fmt.Fprintf(&b, "%s  %s\n", a.SHA256, a.Name)
	}
	sum, size, err := writeAtomic(filepath.Join(dir, sumsName), func(w io.Writer) error {
		_, err := io.WriteString(w, b.String())
		return err
	})
	if err != nil {
		return artifact{}, err
	}
	return artifact{Name: sumsName, Size: size, SHA256: sum}, nil
}

// isArtifactName reports whether name in the output directory is one this
// program writes (or a temporary file of one), so that a rerun can remove
// what an earlier run of another version or target set left behind.
func isArtifactName(name string) bool {
	if strings.HasPrefix(name, ".") && strings.Contains(name, ".tmp-") {
		return true
	}
	if name == sumsName || name == formulaName {
		return true
	}
	return strings.HasPrefix(name, "vmbox-") && (strings.HasSuffix(name, ".tar.gz") || strings.HasSuffix(name, ".msi"))
}

// removeStale deletes the artifacts in dir that this run did not write,
// leaving every other file alone. It returns the names it removed.
func removeStale(dir string, keep []artifact) ([]string, error) {
	kept := map[string]bool{}
	for _, a := range keep {
		kept[a.Name] = true
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var removed []string
	for _, e := range ents {
		if e.IsDir() || kept[e.Name()] || !isArtifactName(e.Name()) {
			continue
		}
		if err := os.Remove(filepath.Join(dir, e.Name())); err != nil {
			return removed, err
		}
		removed = append(removed, e.Name())
	}
	return removed, nil
}
