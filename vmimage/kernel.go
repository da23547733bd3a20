package vmimage

import (
	"bytes"
	"compress/gzip"
	"debug/elf"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// xenElfnotePhys32Entry is XEN_ELFNOTE_PHYS32_ENTRY, the ELF note through
// which a kernel advertises its PVH entry point. QEMU's -kernel boots an ELF
// directly (no firmware, no decompressor) only when it carries this note.
const xenElfnotePhys32Entry = 18

// bzImage setup header fields (Documentation/arch/x86/boot.rst).
const (
	bzSetupSects    = 0x1f1
	bzHeaderMagic   = 0x202 // "HdrS"
	bzVersion       = 0x206
	bzPayloadOffset = 0x248
	bzPayloadLength = 0x24c
)

// bzImagePayload returns the compressed kernel inside an x86 bzImage, as
// the setup header describes it (boot protocol 2.08+). extract-vmlinux finds
// it by scanning for compression magics; the header gives the exact bounds.
func bzImagePayload(bz []byte) ([]byte, error) {
	if len(bz) < 0x250 || string(bz[bzHeaderMagic:bzHeaderMagic+4]) != "HdrS" {
		return nil, errors.New("not an x86 bzImage (no HdrS setup header)")
	}
	if v := binary.LittleEndian.Uint16(bz[bzVersion:]); v < 0x208 {
		return nil, fmt.Errorf("bzImage boot protocol %#x predates payload fields (need 2.08)", v)
	}
	setup := int(bz[bzSetupSects])
	if setup == 0 {
		setup = 4
	}
	start := (setup + 1) * 512
	off := int(binary.LittleEndian.Uint32(bz[bzPayloadOffset:]))
	n := int(binary.LittleEndian.Uint32(bz[bzPayloadLength:]))
	if start+off < start || start+off+n > len(bz) || n == 0 {
		return nil, fmt.Errorf("bzImage payload (offset %d, length %d) outside the %d-byte file", start+off, n, len(bz))
	}
	return bz[start+off : start+off+n], nil
}

// decompressKernel decompresses a kernel payload, recognising it by magic
// like extract-vmlinux does. It handles the formats Debian kernels use for
// the boot image: LZ4 legacy (x86 cloud) and gzip (arm64 vmlinuz).
func decompressKernel(p []byte) ([]byte, error) {
	switch {
	case len(p) >= 4 && binary.LittleEndian.Uint32(p) == lz4LegacyMagic:
		return decodeLZ4Legacy(p)
	case len(p) >= 2 && p[0] == 0x1f && p[1] == 0x8b:
		zr, err := gzip.NewReader(bytes.NewReader(p))
		if err != nil {
			return nil, fmt.Errorf("gzip: %w", err)
		}
		// A gzip payload may be followed by padding or a size trailer.
		zr.Multistream(false)
		out, err := io.ReadAll(zr)
		if err != nil {
			return nil, fmt.Errorf("gzip: %w", err)
		}
		return out, nil
	case bytes.HasPrefix(p, []byte{0xfd, '7', 'z', 'X', 'Z', 0}):
		return nil, errors.New("kernel payload is xz-compressed, which vmimage does not decode (use a kernel flavour built with LZ4 or gzip, such as Debian's cloud kernel)")
	case bytes.HasPrefix(p, []byte{0x28, 0xb5, 0x2f, 0xfd}):
		return nil, errors.New("kernel payload is zstd-compressed, which vmimage does not decode")
	}
	return nil, fmt.Errorf("kernel payload has an unknown compression (starts % x)", p[:min(len(p), 6)])
}

// elfNote is one entry of an ELF note segment.
type elfNote struct {
	Name string
	Type uint32
	Desc []byte
}

// elfNotes parses the notes of every PT_NOTE segment of f.
func elfNotes(f *elf.File) ([]elfNote, error) {
	var notes []elfNote
	for _, p := range f.Progs {
		if p.Type != elf.PT_NOTE {
			continue
		}
		b, err := io.ReadAll(p.Open())
		if err != nil {
			return nil, fmt.Errorf("read PT_NOTE: %w", err)
		}
		for len(b) > 0 {
			if len(b) < 12 {
				return nil, errors.New("truncated ELF note header")
			}
			nsz := f.ByteOrder.Uint32(b)
			dsz := f.ByteOrder.Uint32(b[4:])
			typ := f.ByteOrder.Uint32(b[8:])
			b = b[12:]
			// Name and descriptor are each padded to 4 bytes on both
			// ELF classes in practice (Linux uses 4-byte note alignment).
			np, dp := align4(uint64(nsz)), align4(uint64(dsz))
			if np+uint64(dsz) > uint64(len(b)) {
				return nil, errors.New("ELF note runs past its segment")
			}
			name := string(bytes.TrimRight(b[:nsz], "\x00"))
			notes = append(notes, elfNote{Name: name, Type: typ, Desc: b[np : np+uint64(dsz)]})
			b = b[min(np+dp, uint64(len(b))):]
		}
	}
	return notes, nil
}

func align4(n uint64) uint64 { return (n + 3) &^ 3 }

// checkPVH verifies that vmlinux is an x86-64 ELF executable with the Xen
// PVH entry note, so that QEMU can boot it with -kernel, and returns the
// 32-bit physical entry address the note gives.
func checkPVH(vmlinux []byte) (uint32, error) {
	f, err := elf.NewFile(bytes.NewReader(vmlinux))
	if err != nil {
		return 0, fmt.Errorf("kernel is not an ELF file: %w", err)
	}
	if f.Machine != elf.EM_X86_64 || f.Type != elf.ET_EXEC {
		return 0, fmt.Errorf("kernel ELF is %v %v, want EM_X86_64 ET_EXEC", f.Machine, f.Type)
	}
	notes, err := elfNotes(f)
	if err != nil {
		return 0, err
	}
	for _, n := range notes {
		if n.Name == "Xen" && n.Type == xenElfnotePhys32Entry {
			if len(n.Desc) < 4 {
				return 0, errors.New("Xen PVH entry note has a short descriptor")
			}
			return f.ByteOrder.Uint32(n.Desc), nil
		}
	}
	return 0, errors.New("kernel ELF has no Xen PVH entry note (XEN_ELFNOTE_PHYS32_ENTRY): QEMU cannot boot it directly; was it built without CONFIG_PVH?")
}

// minZeroRun is the shortest run of zero bytes inside a loadable segment
// that compactELF leaves out of the file. Shorter runs cost more in
// program headers and alignment than they save.
const minZeroRun = 64 << 10

const pageSize = 4096

// loadPiece is one PT_LOAD of a compacted ELF.
type loadPiece struct {
	vaddr, paddr, memsz uint64
	flags               elf.ProgFlag
	data                []byte // file contents; memsz-len(data) zero bytes follow
	origOff             uint64 // file offset of data in the input
}

// compactELF rewrites a 64-bit little-endian ELF executable so that it
// loads the same bytes at the same addresses from a smaller file. The
// kernel's vmlinux is about 40% zeros that the file stores explicitly:
// 2 MiB alignment padding between segments, .bss and .init.scratch held
// as file bytes, and alignment gaps inside segments. A PT_LOAD whose memsz
// exceeds its filesz is zero-filled by the loader (QEMU included), so
// trailing zeros move into memsz and long interior zero runs split the
// segment in two. Section headers (which loaders ignore) and anything after
// the last segment (the relocation table the bzImage decompressor appends,
// unused when booting via PVH) are dropped. Segments stay 4 KiB-congruent
// (p_offset ≡ p_vaddr mod p_align) so the result is still a valid ELF for
// any loader, including ones that mmap it.
func compactELF(in []byte) ([]byte, error) {
	f, err := elf.NewFile(bytes.NewReader(in))
	if err != nil {
		return nil, err
	}
	if f.Class != elf.ELFCLASS64 || f.Data != elf.ELFDATA2LSB {
		return nil, fmt.Errorf("compactELF handles 64-bit little-endian ELF, not %v %v", f.Class, f.Data)
	}
	var pieces []loadPiece
	var others []*elf.Prog
	for _, p := range f.Progs {
		if p.Type != elf.PT_LOAD {
			others = append(others, p)
			continue
		}
		if p.Off+p.Filesz > uint64(len(in)) || p.Filesz > p.Memsz {
			return nil, fmt.Errorf("PT_LOAD at offset %#x: bad sizes", p.Off)
		}
		pieces = append(pieces, splitSegment(p, in[p.Off:p.Off+p.Filesz])...)
	}
	if len(pieces) == 0 {
		return nil, errors.New("ELF has no PT_LOAD segments")
	}
	nph := len(pieces) + len(others)
	off := uint64(64 + 56*nph)
	newOff := make([]uint64, len(pieces))
	for i, pc := range pieces {
		// Place the data at the next offset congruent to vaddr mod 4 KiB.
		off += (pc.vaddr - off) % pageSize
		newOff[i] = off
		off += uint64(len(pc.data))
	}
	out := make([]byte, off)
	copy(out, in[:64])
	le := binary.LittleEndian
	le.PutUint64(out[0x20:], 64)          // e_phoff
	le.PutUint64(out[0x28:], 0)           // e_shoff
	le.PutUint16(out[0x36:], 56)          // e_phentsize
	le.PutUint16(out[0x38:], uint16(nph)) // e_phnum
	le.PutUint16(out[0x3a:], 0)           // e_shentsize
	le.PutUint16(out[0x3c:], 0)           // e_shnum
	le.PutUint16(out[0x3e:], 0)           // e_shstrndx
	ph := out[64:]
	put := func(typ elf.ProgType, flags elf.ProgFlag, off, vaddr, paddr, filesz, memsz, align uint64) {
		le.PutUint32(ph[0:], uint32(typ))
		le.PutUint32(ph[4:], uint32(flags))
		le.PutUint64(ph[8:], off)
		le.PutUint64(ph[16:], vaddr)
		le.PutUint64(ph[24:], paddr)
		le.PutUint64(ph[32:], filesz)
		le.PutUint64(ph[40:], memsz)
		le.PutUint64(ph[48:], align)
		ph = ph[56:]
	}
	for i, pc := range pieces {
		copy(out[newOff[i]:], pc.data)
		put(elf.PT_LOAD, pc.flags, newOff[i], pc.vaddr, pc.paddr, uint64(len(pc.data)), pc.memsz, pageSize)
	}
	for _, p := range others {
		no := uint64(0)
		if p.Filesz > 0 {
			found := false
			for i, pc := range pieces {
				if p.Off >= pc.origOff && p.Off+p.Filesz <= pc.origOff+uint64(len(pc.data)) {
					no, found = newOff[i]+(p.Off-pc.origOff), true
					break
				}
			}
			if !found {
				return nil, fmt.Errorf("%v segment at offset %#x is not inside loaded data", p.Type, p.Off)
			}
		}
		put(p.Type, p.Flags, no, p.Vaddr, p.Paddr, p.Filesz, p.Memsz, p.Align)
	}
	if err := sameLoadImage(in, out); err != nil {
		return nil, fmt.Errorf("compactELF self-check: %w", err)
	}
	return out, nil
}

// splitSegment cuts one PT_LOAD's file data at long zero runs and trims its
// trailing zeros. Cuts fall on page boundaries of the virtual address.
func splitSegment(p *elf.Prog, data []byte) []loadPiece {
	end := len(bytes.TrimRight(data, "\x00"))
	var pieces []loadPiece
	start := 0 // start of the current piece
	i := 0
	for i < end {
		if data[i] != 0 {
			i++
			continue
		}
		j := i
		for j < end && data[j] == 0 {
			j++
		}
		// [i, j) is a zero run inside the data; cut it out if a whole
		// page-aligned stretch of at least minZeroRun fits.
		cut1 := i + int((pageSize-(p.Vaddr+uint64(i))%pageSize)%pageSize)
		cut2 := j - int((p.Vaddr+uint64(j))%pageSize)
		if j-i >= minZeroRun && cut2-cut1 >= pageSize && cut1 > start {
			pieces = append(pieces, loadPiece{
				vaddr: p.Vaddr + uint64(start), paddr: p.Paddr + uint64(start),
				memsz: uint64(cut2 - start), flags: p.Flags,
				data: data[start:i], origOff: p.Off + uint64(start),
			})
			start = cut2
		}
		i = j
	}
	return append(pieces, loadPiece{
		vaddr: p.Vaddr + uint64(start), paddr: p.Paddr + uint64(start),
		memsz: p.Memsz - uint64(start), flags: p.Flags,
		data: data[start:end], origOff: p.Off + uint64(start),
	})
}

// loadedRange is what a loader puts at one physical address range.
type loadedRange struct {
	paddr, vaddr uint64
	data         []byte // file bytes, then zeros up to memsz
	memsz        uint64
}

func loadedRanges(b []byte) ([]loadedRange, uint64, error) {
	f, err := elf.NewFile(bytes.NewReader(b))
	if err != nil {
		return nil, 0, err
	}
	var rs []loadedRange
	for _, p := range f.Progs {
		if p.Type != elf.PT_LOAD {
			continue
		}
		if p.Off+p.Filesz > uint64(len(b)) || p.Filesz > p.Memsz {
			return nil, 0, fmt.Errorf("PT_LOAD at %#x: bad sizes", p.Off)
		}
		rs = append(rs, loadedRange{paddr: p.Paddr, vaddr: p.Vaddr, data: b[p.Off : p.Off+p.Filesz], memsz: p.Memsz})
	}
	return rs, f.Entry, nil
}

// sameLoadImage checks that two ELF files make a loader put the same bytes
// at the same physical and virtual addresses, with the same entry point.
func sameLoadImage(a, b []byte) error {
	ra, ea, err := loadedRanges(a)
	if err != nil {
		return err
	}
	rb, eb, err := loadedRanges(b)
	if err != nil {
		return err
	}
	if ea != eb {
		return fmt.Errorf("entry %#x became %#x", ea, eb)
	}
	j := 0
	for _, r := range ra {
		// The pieces of r must follow each other exactly.
		pos := uint64(0)
		for pos < r.memsz {
			if j >= len(rb) {
				return fmt.Errorf("segment at paddr %#x: only %d of %d bytes loaded", r.paddr, pos, r.memsz)
			}
			q := rb[j]
			if q.paddr != r.paddr+pos || q.vaddr != r.vaddr+pos || pos+q.memsz > r.memsz {
				return fmt.Errorf("segment at paddr %#x: piece at paddr %#x does not continue it at offset %#x", r.paddr, q.paddr, pos)
			}
			for k := uint64(0); k < q.memsz; k += 1 << 20 {
				n := min(q.memsz-k, 1<<20)
				if !bytes.Equal(window(r.data, pos+k, n), window(q.data, k, n)) {
					return fmt.Errorf("bytes differ near paddr %#x", r.paddr+pos+k)
				}
			}
			pos += q.memsz
			j++
		}
	}
	if j != len(rb) {
		return fmt.Errorf("%d extra segments", len(rb)-j)
	}
	return nil
}

// window returns data[off:off+n] with the part past len(data) as zeros.
func window(data []byte, off, n uint64) []byte {
	w := make([]byte, n)
	if off < uint64(len(data)) {
		copy(w, data[off:])
	}
	return w
}
