package nsinit

import (
	"testing"

	"golang.org/x/sys/unix"
)

func TestTmpfsOptions(t *testing.T) {
	const def = unix.MS_NOEXEC | unix.MS_NOSUID | unix.MS_NODEV
	for _, tt := range []struct {
		in      string
		flags   uintptr
		data    string
		wantErr bool
	}{
		{in: "", flags: def, data: "mode=1777"},
		{in: "size=64m", flags: def, data: "size=64m,mode=1777"},
		{in: "exec,mode=755,uid=1000", flags: unix.MS_NOSUID | unix.MS_NODEV, data: "mode=755,uid=1000"},
		{in: "ro,size=10%", flags: def | unix.MS_RDONLY, data: "size=10%,mode=1777"},
		{in: "rw,suid,dev", flags: unix.MS_NOEXEC, data: "mode=1777"},
		{in: "mode=999", wantErr: true},
		{in: "size=lots", wantErr: true},
		{in: "uid=x", wantErr: true},
		{in: "bogus", wantErr: true},
		{in: "nr_blocks=2", wantErr: true},
	} {
		flags, data, err := TmpfsOptions(tt.in)
		if tt.wantErr {
			if err == nil {
				t.Errorf("%q: accepted (%#x, %q)", tt.in, flags, data)
			}
			continue
		}
		if err != nil || flags != tt.flags || data != tt.data {
			t.Errorf("%q = %#x, %q, %v; want %#x, %q", tt.in, flags, data, err, tt.flags, tt.data)
		}
	}
}
