package vmimage

import (
	"bytes"
	"compress/gzip"
	"debug/elf"
	"encoding/binary"
	"encoding/hex"
	"strings"
	"testing"
)

type testSeg struct {
	typ          elf.ProgType
	off          uint64
	vaddr, paddr uint64
	data         []byte
	memsz        uint64
}

// mkELF lays out a 64-bit little-endian ELF executable by hand, with each
// segment's data at the file offset given.
func mkELF(machine elf.Machine, entry uint64, segs []testSeg) []byte {
	size := uint64(64 + 56*len(segs))
	for _, s := range segs {
		size = max(size, s.off+uint64(len(s.data)))
	}
	b := make([]byte, size)
	copy(b, "\x7fELF")
	b[4], b[5], b[6] = byte(elf.ELFCLASS64), byte(elf.ELFDATA2LSB), 1
	le := binary.LittleEndian
	le.PutUint16(b[16:], uint16(elf.ET_EXEC))
	le.PutUint16(b[18:], uint16(machine))
	le.PutUint32(b[20:], 1)
	le.PutUint64(b[24:], entry)
	le.PutUint64(b[32:], 64)
	le.PutUint16(b[52:], 64)
	le.PutUint16(b[54:], 56)
	le.PutUint16(b[56:], uint16(len(segs)))
	for i, s := range segs {
		ph := b[64+56*i:]
		le.PutUint32(ph[0:], uint32(s.typ))
		le.PutUint32(ph[4:], uint32(elf.PF_R))
		le.PutUint64(ph[8:], s.off)
		le.PutUint64(ph[16:], s.vaddr)
		le.PutUint64(ph[24:], s.paddr)
		le.PutUint64(ph[32:], uint64(len(s.data)))
		memsz := s.memsz
		if memsz == 0 {
			memsz = uint64(len(s.data))
		}
		le.PutUint64(ph[40:], memsz)
		le.PutUint64(ph[48:], 0x200000)
		copy(b[s.off:], s.data)
	}
	return b
}

func note(name string, typ uint32, desc []byte) []byte {
	le := binary.LittleEndian
	b := le.AppendUint32(nil, uint32(len(name)+1))
	b = le.AppendUint32(b, uint32(len(desc)))
	b = le.AppendUint32(b, typ)
	b = append(b, name...)
	b = append(b, make([]byte, align4(uint64(len(name)+1))-uint64(len(name)))...)
	b = append(b, desc...)
	return append(b, make([]byte, align4(uint64(len(desc)))-uint64(len(desc)))...)
}

// kernelLikeELF resembles vmlinux: a text segment holding the notes, a
// long zero run inside it, big alignment gaps in the file, and a data
// segment that ends in zeros stored in the file (like .bss there).
func kernelLikeELF(notes []byte) []byte {
	text := make([]byte, 0x60000)
	for i := 0; i < 0x10000; i++ {
		text[i] = byte(i*7 + 1)
	}
	copy(text[0x10000:], notes)
	// 0x10000+len(notes) .. 0x40000 is a zero run; then more code.
	for i := 0x40000; i < 0x50000; i++ {
		text[i] = byte(i)
	}
	data := make([]byte, 0x30000)
	for i := 0; i < 0x8000; i++ {
		data[i] = byte(i * 3)
	}
	noteOff := uint64(0x200000 + 0x10000)
	return mkELF(elf.EM_X86_64, 0x1000000, []testSeg{
		{typ: elf.PT_LOAD, off: 0x200000, vaddr: 0xffffffff81000000, paddr: 0x1000000, data: text},
		{typ: elf.PT_LOAD, off: 0x400000, vaddr: 0xffffffff82000000, paddr: 0x2000000, data: data, memsz: 0x50000},
		{typ: elf.PT_NOTE, off: noteOff, vaddr: 0xffffffff81010000, paddr: 0x1010000, data: notes},
	})
}

func pvhNotes() []byte {
	entry := binary.LittleEndian.AppendUint32(nil, 0x1000850)
	return append(note("Linux", 6, []byte("6.1.0\x00")), note("Xen", xenElfnotePhys32Entry, entry)...)
}

func TestCheckPVH(t *testing.T) {
	tests := []struct {
		name    string
		in      []byte
		want    uint32
		wantErr string
	}{
		{"pvh kernel", kernelLikeELF(pvhNotes()), 0x1000850, ""},
		{"no xen note", kernelLikeELF(note("Linux", 6, []byte("6.1\x00"))), 0, "no Xen PVH entry note"},
		{"other xen note only", kernelLikeELF(note("Xen", 5, []byte("xen-3.0\x00"))), 0, "no Xen PVH entry note"},
		{"arm64", mkELF(elf.EM_AARCH64, 0, nil), 0, "want EM_X86_64"},
		{"not elf", []byte("MZ this is not an ELF file at all, but long enough for a header......"), 0, "not an ELF"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := checkPVH(tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("got %#x, %v; want error containing %q", got, err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("got %#x, %v; want %#x", got, err, tt.want)
			}
		})
	}
}

func TestCompactELF(t *testing.T) {
	in := kernelLikeELF(pvhNotes())
	out, err := compactELF(in)
	if err != nil {
		t.Fatal(err)
	}
	if len(out) >= len(in)/4 {
		t.Errorf("compacted %d bytes to %d; expected the padding to go", len(in), len(out))
	}
	if err := sameLoadImage(in, out); err != nil {
		t.Fatal(err)
	}
	if entry, err := checkPVH(out); err != nil || entry != 0x1000850 {
		t.Fatalf("PVH note after compaction: %#x, %v", entry, err)
	}
	f, err := elf.NewFile(bytes.NewReader(out))
	if err != nil {
		t.Fatal(err)
	}
	loads := 0
	for _, p := range f.Progs {
		if p.Type != elf.PT_LOAD {
			continue
		}
		loads++
		if p.Off%pageSize != p.Vaddr%pageSize || p.Align != pageSize {
			t.Errorf("segment at %#x: offset %#x not congruent to its address mod align %#x", p.Vaddr, p.Off, p.Align)
		}
		if p.Filesz > p.Memsz {
			t.Errorf("segment at %#x: filesz > memsz", p.Vaddr)
		}
	}
	// The text segment's zero run is split out: 3 loads, not 2.
	if loads != 3 {
		t.Errorf("%d PT_LOAD segments, want 3 (text split at its zero run, data)", loads)
	}
	if len(f.Sections) != 0 {
		t.Errorf("section headers kept: %d", len(f.Sections))
	}
}

func TestSameLoadImageDetectsChanges(t *testing.T) {
	in := kernelLikeELF(pvhNotes())
	out, err := compactELF(in)
	if err != nil {
		t.Fatal(err)
	}
	f, _ := elf.NewFile(bytes.NewReader(out))
	bad := append([]byte(nil), out...)
	bad[f.Progs[0].Off+5] ^= 0xff
	if err := sameLoadImage(in, bad); err == nil || !strings.Contains(err.Error(), "differ") {
		t.Errorf("changed byte: got %v", err)
	}
	short := append([]byte(nil), out...)
	// Shrink the last segment's memsz: bytes go missing.
	le := binary.LittleEndian
	last := 64 + 56*2
	le.PutUint64(short[last+40:], le.Uint64(short[last+40:])-0x1000)
	if err := sameLoadImage(in, short); err == nil {
		t.Error("shorter memsz not detected")
	}
}

// mkBzImage builds a minimal bzImage: setup sectors with a boot protocol
// 2.08+ header, then the payload at payload_offset.
func mkBzImage(payload []byte, version uint16) []byte {
	const setupSects = 3
	start := (setupSects + 1) * 512
	b := make([]byte, start+0x100+len(payload)+16)
	b[bzSetupSects] = setupSects
	copy(b[bzHeaderMagic:], "HdrS")
	binary.LittleEndian.PutUint16(b[bzVersion:], version)
	binary.LittleEndian.PutUint32(b[bzPayloadOffset:], 0x100)
	binary.LittleEndian.PutUint32(b[bzPayloadLength:], uint32(len(payload)))
	copy(b[start+0x100:], payload)
	return b
}

func TestBzImagePayload(t *testing.T) {
	src, _ := hex.DecodeString(lz4Vector)
	bz := mkBzImage(src, 0x20f)
	p, err := bzImagePayload(bz)
	if err != nil {
		t.Fatal(err)
	}
	got, err := decompressKernel(p)
	if err != nil || !bytes.Equal(got, lz4VectorInput()) {
		t.Fatalf("payload decompressed to %q, %v", got, err)
	}
	if _, err := bzImagePayload(mkBzImage(src, 0x206)); err == nil || !strings.Contains(err.Error(), "predates") {
		t.Errorf("old protocol: %v", err)
	}
	if _, err := bzImagePayload(make([]byte, 4096)); err == nil || !strings.Contains(err.Error(), "not an x86 bzImage") {
		t.Errorf("no header: %v", err)
	}
	broken := mkBzImage(src, 0x20f)
	binary.LittleEndian.PutUint32(broken[bzPayloadLength:], 1<<30)
	if _, err := bzImagePayload(broken); err == nil || !strings.Contains(err.Error(), "outside") {
		t.Errorf("payload past end: %v", err)
	}
}

func TestDecompressKernelFormats(t *testing.T) {
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write([]byte("arm64 Image bytes"))
	zw.Close()
	// Debian's arm64 vmlinuz may carry bytes after the gzip member.
	gz.Write([]byte{0, 0, 0, 0})
	if got, err := decompressKernel(gz.Bytes()); err != nil || string(got) != "arm64 Image bytes" {
		t.Errorf("gzip: %q, %v", got, err)
	}
	tests := []struct {
		name string
		in   []byte
		want string
	}{
		{"xz", []byte{0xfd, '7', 'z', 'X', 'Z', 0, 1, 2}, "xz-compressed"},
		{"zstd", []byte{0x28, 0xb5, 0x2f, 0xfd, 0}, "zstd-compressed"},
		{"unknown", []byte("BZh91AY&SY"), "unknown compression"},
	}
	for _, tt := range tests {
		if _, err := decompressKernel(tt.in); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: got %v, want %q", tt.name, err, tt.want)
		}
	}
}
