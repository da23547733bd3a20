package vmimage

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"math/rand"
	"os/exec"
	"strings"
	"testing"
)

// lz4Vector was made with `lz4 -l -9` (the kernel's format) from
// lz4VectorInput; it has overlapping matches (offset 6 and offset 1 runs).
const lz4Vector = "02214c183e0000006f766d626f782006005fff166162636465666768696a6b6c6d6e6f707172737475767778797a30313233343536373839000100ff198074686520656e640a"

func lz4VectorInput() []byte {
	return []byte(strings.Repeat("vmbox ", 20) + "abcdefghijklmnopqrstuvwxyz0123456789" + strings.Repeat("\x00", 300) + "the end\n")
}

func TestLZ4LegacyVector(t *testing.T) {
	src, _ := hex.DecodeString(lz4Vector)
	want := lz4VectorInput()
	got, err := decodeLZ4Legacy(src)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("decoded %q\nwant %q", got, want)
	}
	// With the kernel's size trailer appended it must still decode, and a
	// wrong trailer must be caught.
	withSize := binary.LittleEndian.AppendUint32(append([]byte(nil), src...), uint32(len(want)))
	if got, err := decodeLZ4Legacy(withSize); err != nil || !bytes.Equal(got, want) {
		t.Fatalf("with size trailer: %v", err)
	}
	badSize := binary.LittleEndian.AppendUint32(append([]byte(nil), src...), uint32(len(want)+1))
	if _, err := decodeLZ4Legacy(badSize); err == nil || !strings.Contains(err.Error(), "trailer says") {
		t.Fatalf("wrong size trailer: got %v", err)
	}
}

func TestLZ4BlockErrors(t *testing.T) {
	tests := []struct {
		name  string
		block []byte
		want  string
	}{
		{"empty", nil, "missing token"},
		{"literals past end", []byte{0x50, 'a', 'b'}, "past the end"},
		{"offset zero", []byte{0x10, 'a', 0, 0}, "match offset 0"},
		{"offset before start", []byte{0x10, 'a', 2, 0}, "match offset 2"},
		{"truncated offset", []byte{0x10, 'a', 1}, "truncated match offset"},
		{"truncated literal length", []byte{0xf0, 255}, "truncated length"},
		{"too long", []byte{0x1f, 'a', 1, 0, 255, 255, 255, 255, 10, 0x00}, "exceeds block limit"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := lz4DecodeBlock(nil, tt.block, 1000)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("got %v, want error containing %q", err, tt.want)
			}
		})
	}
}

func TestLZ4LegacyFrameErrors(t *testing.T) {
	magic := binary.LittleEndian.AppendUint32(nil, lz4LegacyMagic)
	tests := []struct {
		name string
		in   []byte
		want string
	}{
		{"bad magic", []byte{1, 2, 3, 4}, "bad magic"},
		{"block past end", append(append([]byte(nil), magic...), 100, 0, 0, 0, 1, 2, 3, 4, 5), "runs past the end"},
		{"stray bytes", append(append([]byte(nil), magic...), 1, 2), "stray bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := decodeLZ4Legacy(tt.in)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("got %v, want error containing %q", err, tt.want)
			}
		})
	}
}

// lz4Compress is a small greedy LZ4 block compressor for the tests, so the
// decoder is checked on many inputs including long and overlapping matches.
func lz4Compress(src []byte) []byte {
	var out []byte
	putLen := func(n int) {
		for n >= 255 {
			out = append(out, 255)
			n -= 255
		}
		out = append(out, byte(n))
	}
	table := map[uint32]int{}
	anchor, i := 0, 0
	// The format requires the last 5 bytes to be literals and the last
	// match to start at least 12 bytes before the end.
	for i+12 <= len(src) {
		key := binary.LittleEndian.Uint32(src[i:])
		cand, ok := table[key]
		table[key] = i
		if !ok || i-cand > 65535 || !bytes.Equal(src[cand:cand+4], src[i:i+4]) {
			i++
			continue
		}
		ml := 4
		for i+ml < len(src)-5 && src[cand+ml] == src[i+ml] {
			ml++
		}
		lit := i - anchor
		tok := byte(min(lit, 15)<<4) | byte(min(ml-4, 15))
		out = append(out, tok)
		if lit >= 15 {
			putLen(lit - 15)
		}
		out = append(out, src[anchor:i]...)
		out = append(out, byte(i-cand), byte((i-cand)>>8))
		if ml-4 >= 15 {
			putLen(ml - 4 - 15)
		}
		i += ml
		anchor = i
	}
	lit := len(src) - anchor
	out = append(out, byte(min(lit, 15)<<4))
	if lit >= 15 {
		putLen(lit - 15)
	}
	return append(out, src[anchor:]...)
}

func legacyFrame(blocks ...[]byte) []byte {
	out := binary.LittleEndian.AppendUint32(nil, lz4LegacyMagic)
	for _, b := range blocks {
		out = binary.LittleEndian.AppendUint32(out, uint32(len(b)))
		out = append(out, b...)
	}
	return out
}

func TestLZ4RoundTrip(t *testing.T) {
	rng := rand.New(rand.NewSource(1))
	inputs := map[string][]byte{
		"zeros":    make([]byte, 100000),
		"one byte": {7},
		"empty":    {},
		"pattern":  []byte(strings.Repeat("abc", 5000)),
	}
	mixed := make([]byte, 200000)
	for i := range mixed {
		if i%1000 < 500 {
			mixed[i] = byte(rng.Intn(4))
		} else {
			mixed[i] = byte(rng.Intn(256))
		}
	}
	inputs["mixed"] = mixed
	for name, in := range inputs {
		t.Run(name, func(t *testing.T) {
			// Two blocks, as in a frame of several 8 MiB chunks.
			half := len(in) / 2
			frame := legacyFrame(lz4Compress(in[:half]), lz4Compress(in[half:]))
			got, err := decodeLZ4Legacy(frame)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, in) {
				t.Fatalf("round trip of %d bytes gave %d different bytes", len(in), len(got))
			}
		})
	}
}

// TestLZ4AgainstTool cross-checks with the reference lz4 implementation
// when it is installed.
func TestLZ4AgainstTool(t *testing.T) {
	bin, err := exec.LookPath("lz4")
	if err != nil {
		t.Skip("lz4 program not installed; the embedded vector covers its format")
	}
	rng := rand.New(rand.NewSource(2))
	in := make([]byte, 9<<20) // more than one 8 MiB legacy block
	for i := range in {
		if (i/4096)%3 == 0 {
			in[i] = byte(rng.Intn(256))
		} else {
			in[i] = byte(i / 4096)
		}
	}
	cmd := exec.Command(bin, "-l", "-9", "-q", "-c")
	cmd.Stdin = bytes.NewReader(in)
	comp, err := cmd.Output()
	if err != nil {
		t.Fatal(err)
	}
	got, err := decodeLZ4Legacy(comp)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, in) {
		t.Fatal("decoding lz4 -l output differs from its input")
	}
}
