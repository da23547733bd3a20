package driver

import (
	"bytes"
	"io"
	"os"
	"strings"
)

// PanicLine returns the guest kernel's panic message from what the console
// file received since offset (its size when this boot began), or "".
// Drivers boot guests with panic=-1, so a panicking guest reboots, which
// hypervisors report as an orderly stop: the console is where the panic
// shows.
func PanicLine(console string, offset int64) string {
	b, err := ReadTail(console, offset, 64<<10)
	if err != nil {
		return ""
	}
	i := bytes.LastIndex(b, []byte("Kernel panic - not syncing"))
	if i < 0 {
		return ""
	}
	line, _, _ := bytes.Cut(b[i:], []byte("\n"))
	return strings.TrimSpace(string(line))
}

// ReadTail reads at most limit bytes from the end of the file at path, but
// nothing before offset.
func ReadTail(path string, offset, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	start := max(offset, st.Size()-limit)
	if start >= st.Size() {
		return nil, nil
	}
	return io.ReadAll(io.NewSectionReader(f, start, st.Size()-start))
}
