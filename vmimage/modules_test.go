package vmimage

import (
	"archive/tar"
	"debug/elf"
	"encoding/binary"
	"reflect"
	"strings"
	"testing"
)

// testIndex builds a module index from "name: dep dep | softpre softpre"
// specs; builtin lists built-in module names and aliases.
func testIndex(specs []string, builtin ...string) *modIndex {
	idx := &modIndex{mods: map[string]*kmod{}, alias: map[string][]string{}, builtin: map[string]bool{}}
	for _, s := range specs {
		name, rest, _ := strings.Cut(s, ":")
		hard, soft, _ := strings.Cut(rest, "|")
		m := &kmod{name: name, path: "/lib/modules/k/" + name + ".ko", depends: strings.Fields(hard), softPre: strings.Fields(soft)}
		if a, ok := strings.CutPrefix(name, "crc32c_"); ok {
			m.aliases = []string{"crc32c", "crc32c-" + a}
			idx.alias["crc32c"] = append(idx.alias["crc32c"], name)
		}
		idx.mods[name] = m
	}
	for _, b := range builtin {
		idx.builtin[b] = true
	}
	return idx
}

func TestResolveModules(t *testing.T) {
	tests := []struct {
		name        string
		specs       []string
		builtin     []string
		wanted      []string
		wantOrder   []string
		wantDeps    map[string][]string
		wantBuiltin []string
		wantAbsent  []string
		wantErr     string
	}{
		{
			name:      "chain",
			specs:     []string{"a: b", "b: c", "c:"},
			wanted:    []string{"a"},
			wantOrder: []string{"c", "b", "a"},
			wantDeps:  map[string][]string{"a": {"c", "b"}, "b": {"c"}, "c": {}},
		},
		{
			name:      "diamond shares the common dependency",
			specs:     []string{"top: left right", "left: base", "right: base", "base:"},
			wanted:    []string{"top"},
			wantOrder: []string{"base", "left", "right", "top"},
			wantDeps:  map[string][]string{"top": {"base", "left", "right"}, "left": {"base"}, "right": {"base"}, "base": {}},
		},
		{
			name:      "wanted order kept, duplicates and dashes folded",
			specs:     []string{"virtio_net: virtio", "virtio:", "veth:"},
			wanted:    []string{"veth", "virtio-net", "veth", "virtio_net"},
			wantOrder: []string{"veth", "virtio", "virtio_net"},
			wantDeps:  map[string][]string{"veth": {}, "virtio": {}, "virtio_net": {"virtio"}},
		},
		{
			name:        "builtin and absent are reported, not shipped",
			specs:       []string{"overlay:"},
			builtin:     []string{"ext4"},
			wanted:      []string{"ext4", "overlay", "9p"},
			wantOrder:   []string{"overlay"},
			wantDeps:    map[string][]string{"overlay": {}},
			wantBuiltin: []string{"ext4"},
			wantAbsent:  []string{"9p"},
		},
		{
			name:      "soft dependency met by a built-in alias adds nothing",
			specs:     []string{"libcrc32c: | crc32c", "crc32c_intel:"},
			builtin:   []string{"crc32c_generic", "crc32c"},
			wanted:    []string{"libcrc32c"},
			wantOrder: []string{"libcrc32c"},
			wantDeps:  map[string][]string{"libcrc32c": {}},
		},
		{
			name:      "soft dependency provided only by a module is loaded first",
			specs:     []string{"libcrc32c: | crc32c", "crc32c_intel:"},
			wanted:    []string{"libcrc32c"},
			wantOrder: []string{"crc32c_intel", "libcrc32c"},
			wantDeps:  map[string][]string{"libcrc32c": {"crc32c_intel"}, "crc32c_intel": {}},
		},
		{
			name:      "unknown soft dependency is ignored",
			specs:     []string{"xt_LOG: x_tables | nf_log_syslog", "x_tables:"},
			wanted:    []string{"xt_LOG"},
			wantOrder: []string{"x_tables", "xt_LOG"},
			wantDeps:  map[string][]string{"xt_LOG": {"x_tables"}, "x_tables": {}},
		},
		{
			name:    "missing hard dependency",
			specs:   []string{"a: gone"},
			wanted:  []string{"a"},
			wantErr: "depends on gone",
		},
		{
			name:    "cycle",
			specs:   []string{"a: b", "b: a"},
			wanted:  []string{"a"},
			wantErr: "cycle: a -> b -> a",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			set, err := testIndex(tt.specs, tt.builtin...).resolve(tt.wanted)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("got %v, want error containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var order []string
			for _, m := range set.Ordered {
				order = append(order, m.name)
			}
			if !reflect.DeepEqual(order, tt.wantOrder) {
				t.Errorf("order %v, want %v", order, tt.wantOrder)
			}
			if !reflect.DeepEqual(set.Deps, tt.wantDeps) {
				t.Errorf("deps %v, want %v", set.Deps, tt.wantDeps)
			}
			if !reflect.DeepEqual(set.Builtin, tt.wantBuiltin) || !reflect.DeepEqual(set.Absent, tt.wantAbsent) {
				t.Errorf("builtin %v absent %v, want %v %v", set.Builtin, set.Absent, tt.wantBuiltin, tt.wantAbsent)
			}
			// Whatever the case, the order must be a valid load order.
			loaded := map[string]bool{}
			for _, m := range set.Ordered {
				for _, d := range set.Deps[m.name] {
					if !loaded[d] {
						t.Errorf("%s ordered before its dependency %s", m.name, d)
					}
				}
				loaded[m.name] = true
			}
		})
	}
}

func TestModulesTxt(t *testing.T) {
	set, err := testIndex([]string{"nf_nat: nf_conntrack", "nf_conntrack:"}).resolve([]string{"nf_nat"})
	if err != nil {
		t.Fatal(err)
	}
	want := "nf_conntrack /lib/modules/k/nf_conntrack.ko -\nnf_nat /lib/modules/k/nf_nat.ko nf_conntrack\n"
	if got := string(set.modulesTxt()); got != want {
		t.Errorf("modules.txt:\n%s\nwant:\n%s", got, want)
	}
}

// mkModule builds a minimal ELF relocatable with a .modinfo section, the
// part of a .ko that indexModules reads.
func mkModule(modinfo string) []byte {
	shstr := "\x00.modinfo\x00.shstrtab\x00"
	le := binary.LittleEndian
	infoOff := 64
	strOff := infoOff + len(modinfo)
	shOff := (strOff + len(shstr) + 7) &^ 7
	b := make([]byte, shOff+3*64)
	copy(b, "\x7fELF")
	b[4], b[5], b[6] = byte(elf.ELFCLASS64), byte(elf.ELFDATA2LSB), 1
	le.PutUint16(b[16:], uint16(elf.ET_REL))
	le.PutUint16(b[18:], uint16(elf.EM_X86_64))
	le.PutUint32(b[20:], 1)
	le.PutUint64(b[40:], uint64(shOff))
	le.PutUint16(b[52:], 64)
	le.PutUint16(b[58:], 64)
	le.PutUint16(b[60:], 3)
	le.PutUint16(b[62:], 2)
	copy(b[infoOff:], modinfo)
	copy(b[strOff:], shstr)
	sh := func(i int, name uint32, typ elf.SectionType, off, size int) {
		s := b[shOff+64*i:]
		le.PutUint32(s[0:], name)
		le.PutUint32(s[4:], uint32(typ))
		le.PutUint64(s[24:], uint64(off))
		le.PutUint64(s[32:], uint64(size))
		le.PutUint64(s[48:], 1)
	}
	sh(1, 1, elf.SHT_PROGBITS, infoOff, len(modinfo))
	sh(2, 10, elf.SHT_STRTAB, strOff, len(shstr))
	return b
}

func TestIndexModules(t *testing.T) {
	tr := newTree()
	const k = "/lib/modules/6.1.0-1-test"
	files := map[string][]byte{
		k + "/kernel/net/netfilter/nf_conntrack.ko": mkModule("license=GPL\x00depends=nf_defrag_ipv4,libcrc32c\x00name=nf_conntrack\x00"),
		k + "/kernel/net/ipv4/nf_defrag_ipv4.ko":    mkModule("depends=\x00name=nf_defrag_ipv4\x00"),
		k + "/kernel/lib/libcrc32c.ko":              mkModule("softdep=pre: crc32c\x00depends=\x00name=libcrc32c\x00"),
		k + "/kernel/arch/x86/crc32c-intel.ko":      mkModule("alias=crc32c\x00alias=crypto-crc32c\x00depends=\x00name=crc32c_intel\x00"),
		k + "/kernel/drivers/char/virtio-rng.ko":    mkModule("depends=\x00"),
		k + "/modules.builtin":                      []byte("kernel/crypto/crc32c_generic.ko\nkernel/fs/ext4/ext4.ko\n"),
		k + "/modules.builtin.modinfo":              []byte("crc32c_generic.alias=crc32c\x00ext4.license=GPL\x00"),
	}
	for p, data := range files {
		if err := tr.add(p, &node{typ: tar.TypeReg, mode: 0o644, data: data}); err != nil {
			t.Fatal(err)
		}
	}
	idx, err := indexModules(tr, "6.1.0-1-test")
	if err != nil {
		t.Fatal(err)
	}
	if idx.mods["virtio_rng"] == nil {
		t.Error("virtio-rng.ko not indexed as virtio_rng")
	}
	set, err := idx.resolve([]string{"nf_conntrack", "ext4", "virtio_rng"})
	if err != nil {
		t.Fatal(err)
	}
	want := "libcrc32c " + k + "/kernel/lib/libcrc32c.ko -\n" +
		"nf_defrag_ipv4 " + k + "/kernel/net/ipv4/nf_defrag_ipv4.ko -\n" +
		"nf_conntrack " + k + "/kernel/net/netfilter/nf_conntrack.ko libcrc32c,nf_defrag_ipv4\n" +
		"virtio_rng " + k + "/kernel/drivers/char/virtio-rng.ko -\n"
	if got := string(set.modulesTxt()); got != want {
		t.Errorf("modules.txt:\n%s\nwant:\n%s", got, want)
	}
	if !reflect.DeepEqual(set.Builtin, []string{"ext4"}) {
		t.Errorf("builtin %v", set.Builtin)
	}
}
