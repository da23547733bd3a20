package boot

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/vmbox/vmbox/guest/api/vmconfig"
)

// diskProbe says what a disk holds, as far as its first and last megabyte
// tell.
type diskProbe struct {
	// Blank is true when the probed ranges are all zero: no file system,
	// partition table or volume signature can be there.
	Blank bool
	// Type names what was found: "ext2", "ext3", "ext4", "xfs", "btrfs",
	// "swap", ..., or "unknown" for non-zero data without a known
	// signature. Empty when Blank.
	Type string
	// Label is the ext file system's volume label.
	Label string
}

// isVmboxData reports whether the disk holds the file system vmbox made.
func (p diskProbe) isVmboxData() bool {
	return (p.Type == "ext4" || p.Type == "ext3" || p.Type == "ext2") && p.Label == vmconfig.DataLabel
}

// mke2fsArgs are the options the data disk is made with, before the
// device. Lazy inode table and journal initialisation keep the first boot
// fast, and nodiscard skips a pointless full-disk discard of a sparse
// image. A fresh disk is one the host just created sparse, so it reads as
// zeros: assume_storage_prezeroed marks its inode tables zeroed, or the
// kernel's ext4lazyinit thread would spend the instance's first minutes
// (hours on a large disk) writing zeros over them, waking an idle VM
// hundreds of times a minute. A disk that may hold old data gets the
// background zeroing, which keeps e2fsck from reading stale inodes.
func mke2fsArgs(fresh bool) []string {
	ext := "lazy_itable_init=1,lazy_journal_init=1,nodiscard"
	if fresh {
		ext += ",assume_storage_prezeroed=1"
	}
	return []string{"-q", "-t", "ext4", "-L", vmconfig.DataLabel, "-E", ext, "-F"}
}

// probeSpan is how much of each end of the disk probeDisk reads: every
// signature it knows lies in the first 64 KiB (btrfs) or the last sectors
// (GPT backup, md 0.90/1.0, ZFS labels in the last 512 KiB).
const probeSpan = 1 << 20

// signature is a magic byte string at a fixed offset from the disk's start.
type signature struct {
	off   int
	magic string
	typ   string
}

// signatures are checked after ext. Order matters where one format embeds
// another's marker: FAT boot sectors end in 0x55AA like an MBR.
var signatures = []signature{
	{0, "XFSB", "xfs"},
	{0x10040, "_BHRfS_M", "btrfs"},
	{0, "LUKS\xba\xbe", "crypto_LUKS"},
	{0, "hsqs", "squashfs"},
	{0x8001, "CD001", "iso9660"},
	{0x1000, "\xfc\x4e\x2b\xa9", "linux_raid_member"}, // md 1.2
	{0, "\xfc\x4e\x2b\xa9", "linux_raid_member"},      // md 1.1
	{0x218, "LVM2 001", "LVM2_member"},
	{4096 - 10, "SWAPSPACE2", "swap"},
	{4096 - 10, "SWAP-SPACE", "swap"},
	{65536 - 10, "SWAPSPACE2", "swap"},
	{1024, "\x10\x20\xf5\xf2", "f2fs"},
	{3, "NTFS    ", "ntfs"},
	{0x52, "FAT32   ", "vfat"},
	{0x36, "FAT16   ", "vfat"},
	{0x36, "FAT12   ", "vfat"},
	{0x200, "EFI PART", "gpt"},
	{0x1000, "EFI PART", "gpt"},
	{0x1fe, "\x55\xaa", "dos"}, // MBR partition table (or another boot sector)
}

// ext superblock fields (at byte 1024 of the disk).
const (
	extSuperOff     = 1024
	extMagicOff     = extSuperOff + 56
	extCompatOff    = extSuperOff + 92
	extIncompatOff  = extSuperOff + 96
	extROCompatOff  = extSuperOff + 100
	extLabelOff     = extSuperOff + 120
	extMagic        = 0xEF53
	extCompatJournl = 0x4
	// incompat features only ext4 uses: extents, 64bit, flex_bg, mmp,
	// inline_data, encrypt, csum_seed, large_dir, metadata_csum via ro_compat.
	extIncompatExt4 = 0x40 | 0x80 | 0x100 | 0x200 | 0x2000 | 0x8000 | 0x10000 | 0x4000
	extROCompatExt4 = 0x8 | 0x20 | 0x40 | 0x400 // huge_file, dir_nlink, extra_isize, metadata_csum
)

// probeDisk reads the first and last megabyte of a disk of the given size
// and says what it holds. Nothing is written.
func probeDisk(r io.ReaderAt, size int64) (diskProbe, error) {
	if size <= 0 {
		return diskProbe{}, errors.New("probe disk: size is zero")
	}
	headLen := min(size, probeSpan)
	head := make([]byte, headLen)
	if _, err := r.ReadAt(head, 0); err != nil && !errors.Is(err, io.EOF) {
		return diskProbe{}, fmt.Errorf("probe disk: read start: %w", err)
	}
	if p, ok := probeHead(head); ok {
		return p, nil
	}
	blank := allZero(head)
	if blank && size > headLen {
		tailOff := max(headLen, size-probeSpan)
		tail := make([]byte, size-tailOff)
		if _, err := r.ReadAt(tail, tailOff); err != nil && !errors.Is(err, io.EOF) {
			return diskProbe{}, fmt.Errorf("probe disk: read end: %w", err)
		}
		blank = allZero(tail)
	}
	if blank {
		return diskProbe{Blank: true}, nil
	}
	return diskProbe{Type: "unknown"}, nil
}

func probeHead(b []byte) (diskProbe, bool) {
	if len(b) >= extSuperOff+1024 && binary.LittleEndian.Uint16(b[extMagicOff:]) == extMagic {
		p := diskProbe{Type: "ext2"}
		compat := binary.LittleEndian.Uint32(b[extCompatOff:])
		incompat := binary.LittleEndian.Uint32(b[extIncompatOff:])
		rocompat := binary.LittleEndian.Uint32(b[extROCompatOff:])
		switch {
		case incompat&extIncompatExt4 != 0 || rocompat&extROCompatExt4 != 0:
			p.Type = "ext4"
		case compat&extCompatJournl != 0:
			p.Type = "ext3"
		}
		label := b[extLabelOff : extLabelOff+16]
		if i := bytes.IndexByte(label, 0); i >= 0 {
			label = label[:i]
		}
		p.Label = string(label)
		// Another format's signature beside an ext superblock means the disk
		// was reformatted (or is damaged): never take it for ours.
		if other := matchSignature(b); other != "" {
			p.Type += "+" + other
		}
		return p, true
	}
	if t := matchSignature(b); t != "" {
		return diskProbe{Type: t}, true
	}
	return diskProbe{}, false
}

func matchSignature(b []byte) string {
	for _, s := range signatures {
		if s.off+len(s.magic) <= len(b) && string(b[s.off:s.off+len(s.magic)]) == s.magic {
			return s.typ
		}
	}
	return ""
}

func allZero(b []byte) bool {
	for len(b) >= 8 {
		if binary.LittleEndian.Uint64(b) != 0 {
			return false
		}
		b = b[8:]
	}
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}
