package vmimage

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// lz4LegacyMagic starts an LZ4 "legacy" frame, the format the kernel build
// uses for CONFIG_KERNEL_LZ4 (lz4 -l).
const lz4LegacyMagic = 0x184C2102

// lz4LegacyMaxBlock is the largest decompressed size of one legacy block.
const lz4LegacyMaxBlock = 8 << 20

// decodeLZ4Legacy decompresses a kernel LZ4 payload: one or more legacy
// frames (magic, then blocks each prefixed by a little-endian compressed
// length) optionally followed by the 4-byte little-endian decompressed size
// the kernel build appends. When that trailer is present it must match.
func decodeLZ4Legacy(src []byte) ([]byte, error) {
	if len(src) < 4 || binary.LittleEndian.Uint32(src) != lz4LegacyMagic {
		return nil, errors.New("lz4: not a legacy frame (bad magic)")
	}
	var out []byte
	// The size trailer, if present, avoids regrowing a ~50 MB buffer. A
	// wrong guess costs only memory, bounded by LZ4's maximum ratio (255:1).
	if hint := uint64(binary.LittleEndian.Uint32(src[len(src)-4:])); hint <= 255*uint64(len(src)) {
		out = make([]byte, 0, hint)
	}
	p := 4
	for {
		rest := len(src) - p
		if rest == 0 {
			return out, nil
		}
		if rest < 4 {
			return nil, fmt.Errorf("lz4: %d stray bytes after the last block", rest)
		}
		n := binary.LittleEndian.Uint32(src[p:])
		if rest == 4 {
			// The kernel's size_append trailer.
			if n != uint32(len(out)) {
				return nil, fmt.Errorf("lz4: decompressed %d bytes, trailer says %d", len(out), n)
			}
			return out, nil
		}
		p += 4
		if n == lz4LegacyMagic {
			continue // concatenated frame
		}
		if uint64(n) > uint64(len(src)-p) {
			return nil, fmt.Errorf("lz4: block of %d bytes at offset %d runs past the end (%d left)", n, p-4, len(src)-p)
		}
		var err error
		out, err = lz4DecodeBlock(out, src[p:p+int(n)], lz4LegacyMaxBlock)
		if err != nil {
			return nil, fmt.Errorf("lz4: block at offset %d: %w", p-4, err)
		}
		p += int(n)
	}
}

// lz4DecodeBlock appends the decompression of one LZ4 block to dst. Matches
// may only refer to bytes produced by this block (legacy blocks are
// independent), and the block may produce at most limit bytes.
func lz4DecodeBlock(dst, src []byte, limit int) ([]byte, error) {
	base := len(dst)
	i := 0
	readLen := func(l int) (int, error) {
		if l != 15 {
			return l, nil
		}
		for {
			if i >= len(src) {
				return 0, errors.New("truncated length")
			}
			b := src[i]
			i++
			l += int(b)
			if l > limit {
				return 0, errors.New("length exceeds block limit")
			}
			if b != 255 {
				return l, nil
			}
		}
	}
	for {
		if i >= len(src) {
			return nil, errors.New("truncated: missing token")
		}
		token := src[i]
		i++
		lit, err := readLen(int(token >> 4))
		if err != nil {
			return nil, fmt.Errorf("literal %w", err)
		}
		if lit > len(src)-i {
			return nil, errors.New("literals run past the end of the block")
		}
		if len(dst)-base+lit > limit {
			return nil, fmt.Errorf("block decompresses to more than %d bytes", limit)
		}
		dst = append(dst, src[i:i+lit]...)
		i += lit
		if i == len(src) {
			return dst, nil // the last sequence has literals only
		}
		if len(src)-i < 2 {
			return nil, errors.New("truncated match offset")
		}
		off := int(src[i]) | int(src[i+1])<<8
		i += 2
		if off == 0 || off > len(dst)-base {
			return nil, fmt.Errorf("match offset %d outside the %d bytes decoded so far", off, len(dst)-base)
		}
		ml, err := readLen(int(token & 15))
		if err != nil {
			return nil, fmt.Errorf("match %w", err)
		}
		ml += 4
		if len(dst)-base+ml > limit {
			return nil, fmt.Errorf("block decompresses to more than %d bytes", limit)
		}
		from := len(dst) - off
		if off >= ml {
			dst = append(dst, dst[from:from+ml]...)
		} else {
			// Overlapping copy: the output from 'from' on is periodic with
			// period off, and each append keeps it so, doubling what the
			// next append may copy.
			for ml > 0 {
				n := min(len(dst)-from, ml)
				dst = append(dst, dst[from:from+n]...)
				ml -= n
			}
		}
	}
}
