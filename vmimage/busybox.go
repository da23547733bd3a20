package vmimage

import (
	"bytes"
	"errors"
	"fmt"
	"sort"
	"strings"
)

// busyboxApplets reads the applet names compiled into a busybox binary.
// Busybox keeps them as one NUL-separated, sorted string table
// ("[\0[[\0acpid\0...\0zcat\0\0") that it binary-searches at run time,
// so reading that table gives exactly what "busybox --list" prints, for any
// architecture, without running the binary.
func busyboxApplets(bin []byte) ([]string, error) {
	start := []byte("\x00[\x00[[\x00")
	i := bytes.Index(bin, start)
	if i < 0 {
		return nil, errors.New("busybox: applet name table not found")
	}
	if bytes.Index(bin[i+1:], start) >= 0 {
		return nil, errors.New("busybox: applet name table found twice")
	}
	var names []string
	p := i + 1
	for {
		end := bytes.IndexByte(bin[p:], 0)
		if end < 0 {
			return nil, errors.New("busybox: applet name table is not terminated")
		}
		name := string(bin[p : p+end])
		p += end + 1
		if name == "" {
			break
		}
		if !validApplet(name) {
			return nil, fmt.Errorf("busybox: unexpected applet name %q in the table", name)
		}
		if n := len(names); n > 0 && names[n-1] >= name {
			return nil, fmt.Errorf("busybox: applet table not sorted at %q", name)
		}
		names = append(names, name)
		if len(names) > 2000 {
			return nil, errors.New("busybox: applet table has no end")
		}
	}
	if len(names) < 50 {
		return nil, fmt.Errorf("busybox: only %d applets found", len(names))
	}
	return names, nil
}

func validApplet(s string) bool {
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("[]._-", r)) {
			return false
		}
	}
	return true
}

// caBundle builds /etc/ssl/certs/ca-certificates.crt the way Debian's
// update-ca-certificates does on install (the package ships only the
// individual certificates): every certificate the package provides,
// concatenated in sorted path order, each ending in a newline.
func caBundle(t *tree) ([]byte, error) {
	const dir = "/usr/share/ca-certificates"
	paths := t.list(dir)
	sort.Strings(paths)
	var b bytes.Buffer
	n := 0
	for _, p := range paths {
		if !strings.HasSuffix(p, ".crt") {
			continue
		}
		data, err := t.file(p)
		if err != nil {
			return nil, err
		}
		if !bytes.Contains(data, []byte("-----BEGIN CERTIFICATE-----")) {
			return nil, fmt.Errorf("%s: not a PEM certificate", p)
		}
		b.Write(data)
		if len(data) > 0 && data[len(data)-1] != '\n' {
			b.WriteByte('\n')
		}
		n++
	}
	if n < 10 {
		return nil, fmt.Errorf("ca-certificates: only %d certificates under %s", n, dir)
	}
	return b.Bytes(), nil
}
