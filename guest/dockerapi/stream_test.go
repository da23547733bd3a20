package dockerapi

import (
	"bytes"
	"io"
	"strings"
	"testing"

	"github.com/moby/moby/api/pkg/stdcopy"
)

// TestMuxWriterFrames checks the frames against moby's own demultiplexer.
func TestMuxWriterFrames(t *testing.T) {
	tests := []struct {
		name   string
		writes []struct {
			stderr bool
			data   string
		}
		wantOut, wantErr string
	}{
		{name: "empty"},
		{name: "both streams", writes: []struct {
			stderr bool
			data   string
		}{{false, "out1\n"}, {true, "err1\n"}, {false, "out2"}}, wantOut: "out1\nout2", wantErr: "err1\n"},
		{name: "larger than a frame", writes: []struct {
			stderr bool
			data   string
		}{{false, strings.Repeat("x", maxFrame+10)}}, wantOut: strings.Repeat("x", maxFrame+10)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			o, e := newMux(&buf)
			for _, w := range tt.writes {
				dst := io.Writer(o)
				if w.stderr {
					dst = e
				}
				if n, err := dst.Write([]byte(w.data)); err != nil || n != len(w.data) {
					t.Fatalf("write: %d, %v", n, err)
				}
			}
			var out, errOut bytes.Buffer
			if _, err := stdcopy.StdCopy(&out, &errOut, &buf); err != nil {
				t.Fatalf("StdCopy: %v", err)
			}
			if out.String() != tt.wantOut || errOut.String() != tt.wantErr {
				t.Errorf("got stdout %q stderr %q, want %q %q", out.String(), errOut.String(), tt.wantOut, tt.wantErr)
			}
		})
	}
}
