package boot

import (
	"reflect"
	"testing"
)

func TestParseCmdline(t *testing.T) {
	tests := []struct {
		in   string
		want kernelCmdline
	}{
		{"", kernelCmdline{}},
		{"console=ttyS0 quiet panic=-1\n", kernelCmdline{"console": "ttyS0", "quiet": "", "panic": "-1"}},
		{`vmbox.debug foo="a b c" bar="x=y"`, kernelCmdline{"vmbox.debug": "", "foo": "a b c", "bar": "x=y"}},
		{"a=1 a=2", kernelCmdline{"a": "2"}},
		{"root=/dev/vda -- init-arg=1", kernelCmdline{"root": "/dev/vda"}},
		{"  spaced\t\tout  ", kernelCmdline{"spaced": "", "out": ""}},
		{`"quoted word"=v`, kernelCmdline{"quoted word": "v"}},
		{"=novalue x", kernelCmdline{"x": ""}},
	}
	for _, tt := range tests {
		if got := parseKernelCmdline(tt.in); !reflect.DeepEqual(got, tt.want) {
			t.Errorf("ParseCmdline(%q) = %v, want %v", tt.in, got, tt.want)
		}
	}
}

func TestCmdlineFlag(t *testing.T) {
	tests := []struct {
		in   string
		want bool
	}{
		{"vmbox.debug", true},
		{"vmbox.debug=1", true},
		{"vmbox.debug=yes", true},
		{"vmbox.debug=0", false},
		{"vmbox.debug=off", false},
		{"vmbox.debug=False", false},
		{"quiet", false},
	}
	for _, tt := range tests {
		if got := parseKernelCmdline(tt.in).Debug(); got != tt.want {
			t.Errorf("Debug() of %q = %v, want %v", tt.in, got, tt.want)
		}
	}
}
