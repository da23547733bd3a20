package qemu

import (
	"errors"
	"slices"
	"strings"
	"testing"
)

func TestKernelCmdline(t *testing.T) {
	const common = "cryptomgr.notests rcupdate.rcu_expedited=1 mitigations=off rodata=off " +
		"watchdog_thresh=60 sysctl.vm.compaction_proactiveness=0 transparent_hugepage=madvise sysctl.vm.stat_interval=10 psi=0 " +
		"sysctl.net.ipv4.neigh.default.interval_probe_time_ms=3600000 sysctl.net.ipv6.neigh.default.interval_probe_time_ms=3600000"
	const tcgX86 = "console=ttyS0 quiet panic=-1 tsc=reliable lpj=8384092 no_timer_check " +
		common + " 8250.nr_uarts=1 tsc_early_khz=2096023"
	const plainX86 = "console=ttyS0 quiet panic=-1 " + common + " 8250.nr_uarts=1"
	const arm = "console=ttyAMA0 quiet panic=-1 " + common
	tests := []struct {
		name string
		p    KernelParams
		want string
	}{
		{"amd64 tcg 1 cpu", KernelParams{Arch: "amd64", Accel: AccelTCG, CPUs: 1, TSCKHz: 2096023}, tcgX86 + " GODEBUG=cpu.sse42=off"},
		{"amd64 tcg 2 cpus", KernelParams{Arch: "amd64", Accel: AccelTCG, CPUs: 2, TSCKHz: 2096023}, tcgX86 + " GODEBUG=cpu.sse42=off maxcpus=1"},
		{"amd64 tcg unknown tsc", KernelParams{Arch: "amd64", Accel: AccelTCG, CPUs: 1}, plainX86 + " GODEBUG=cpu.sse42=off"},
		{"amd64 kvm", KernelParams{Arch: "amd64", Accel: AccelKVM, CPUs: 4, TSCKHz: 2096023}, plainX86},
		{"amd64 hvf", KernelParams{Arch: "amd64", Accel: AccelHVF, CPUs: 2, TSCKHz: 2096023}, plainX86},
		{"amd64 whpx keeps timing words for the tcg fallback", KernelParams{Arch: "amd64", Accel: AccelWHPX, CPUs: 2, TSCKHz: 2096023}, tcgX86},
		{"amd64 extra words last", KernelParams{Arch: "amd64", Accel: AccelKVM, CPUs: 1, Extra: []string{"vmbox.debug", "quiet=0"}}, plainX86 + " vmbox.debug quiet=0"},
		{"arm64 tcg", KernelParams{Arch: "arm64", Accel: AccelTCG, CPUs: 1, TSCKHz: 1_000_000}, arm},
		{"arm64 tcg 4 cpus", KernelParams{Arch: "arm64", Accel: AccelTCG, CPUs: 4}, arm + " maxcpus=1"},
		{"arm64 hvf", KernelParams{Arch: "arm64", Accel: AccelHVF, CPUs: 4}, arm},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := strings.Join(KernelCmdline(tt.p), " "); got != tt.want {
				t.Errorf("got  %s\nwant %s", got, tt.want)
			}
		})
	}
}

func TestChooseAccel(t *testing.T) {
	yes := func(string) error { return nil }
	no := func(string) error { return errors.New("there is no /dev/kvm") }
	tests := []struct {
		goos, host, guest string
		problem           func(string) error
		want, emulated    string
	}{
		{"linux", "amd64", "amd64", yes, AccelKVM, ""},
		{"linux", "amd64", "amd64", no, AccelTCG, "KVM is not usable: there is no /dev/kvm"},
		{"linux", "amd64", "arm64", yes, AccelTCG, "an arm64 guest on an amd64 host"},
		{"linux", "arm64", "arm64", yes, AccelKVM, ""},
		{"darwin", "arm64", "arm64", yes, AccelHVF, ""},
		{"darwin", "arm64", "arm64", no, AccelTCG, "HVF is not usable: there is no /dev/kvm"},
		{"darwin", "arm64", "amd64", yes, AccelTCG, "an amd64 guest on an arm64 host"},
		{"darwin", "amd64", "amd64", yes, AccelHVF, ""},
		{"windows", "amd64", "amd64", no, AccelWHPX, ""}, // QEMU falls back to TCG itself
		{"windows", "amd64", "arm64", yes, AccelTCG, "an arm64 guest on an amd64 host"},
		{"freebsd", "amd64", "amd64", yes, AccelTCG, "QEMU has no hardware accelerator on freebsd"},
	}
	for _, tt := range tests {
		got, emulated := chooseAccel(tt.goos, tt.host, tt.guest, tt.problem)
		if got != tt.want || emulated != tt.emulated {
			t.Errorf("chooseAccel(%s, %s, %s) = %s, %q; want %s, %q", tt.goos, tt.host, tt.guest, got, emulated, tt.want, tt.emulated)
		}
	}
}

func TestCheckAccel(t *testing.T) {
	for _, a := range []string{"kvm", "hvf", "whpx", "tcg"} {
		if err := checkAccel(a); err != nil {
			t.Errorf("checkAccel(%s) = %v", a, err)
		}
	}
	if err := checkAccel("xen"); err == nil {
		t.Error("checkAccel(xen) accepted")
	}
}

func TestArgs(t *testing.T) {
	base := func(arch, accel string, cpus int) Config {
		return Config{
			Name: "dev", Arch: arch, Accel: accel, CPUs: cpus, MemoryMiB: 2048,
			Kernel: "/img/kernel", Initrd: "/inst/initrd.combined",
			Cmdline: []string{"console=ttyS0", "quiet"}, DataDisk: "/inst/data.raw",
			Console: "/inst/console.log", AgentPort: 40022, ForwardPort: 40023, QMPSocket: "qmp.sock", Pidfile: "/inst/qemu.pid",
		}
	}
	common := func(machine, accel, cpu string, cpus string, dev string) []string {
		a := []string{"-name", "vmbox-dev", "-machine", machine}
		a = append(a, strings.Fields(accel)...)
		a = append(a, "-cpu", cpu, "-m", "2048", "-smp", cpus,
			"-nodefaults", "-no-reboot", "-display", "none", "-monitor", "none",
			"-qmp", "unix:qmp.sock,server=on,wait=off",
			"-pidfile", "/inst/qemu.pid",
			"-chardev", "file,id=console,path=/inst/console.log,append=on", "-serial", "chardev:console",
			"-kernel", "/img/kernel", "-initrd", "/inst/initrd.combined",
			"-append", "console=ttyS0 quiet",
			"-netdev", "user,id=net0,net=10.0.2.0/24,host=10.0.2.2,dns=10.0.2.3,hostfwd=tcp:127.0.0.1:40022-10.0.2.15:2222,hostfwd=tcp:127.0.0.1:40023-10.0.2.15:2223",
			"-device", "virtio-net-"+dev+",netdev=net0",
			"-device", "virtio-rng-"+dev,
			"-device", "virtio-balloon-"+dev+",free-page-reporting=on",
			"-drive", "file=/inst/data.raw,format=raw,if=none,id=data,cache=writeback,discard=unmap,detect-zeroes=unmap",
			"-device", "virtio-blk-"+dev+",drive=data,serial=vmbox-data",
		)
		return a
	}
	noArchCaps := func(c Config) Config { c.NoArchCapabilities = true; return c }
	const microvm = "microvm,pit=off,pic=on,rtc=on"
	const qemu64 = "qemu64,+ssse3,+sse4.1,+sse4.2,+popcnt,+rdrand,+arat,+aes,+pclmulqdq"
	tests := []struct {
		name string
		c    Config
		want []string
	}{
		{"amd64 tcg 2", base("amd64", "tcg", 2), common(microvm, "-accel tcg", qemu64, "2", "device")},
		{"amd64 kvm 4", base("amd64", "kvm", 4), common(microvm, "-accel kvm", "host", "4", "device")},
		{"amd64 kvm without arch-capabilities", noArchCaps(base("amd64", "kvm", 2)), common(microvm, "-accel kvm", "host,-arch-capabilities", "2", "device")},
		{"amd64 tcg ignores no arch-capabilities", noArchCaps(base("amd64", "tcg", 2)), common(microvm, "-accel tcg", qemu64, "2", "device")},
		{"amd64 hvf 1", base("amd64", "hvf", 1), common(microvm, "-accel hvf", "host", "1", "device")},
		{"amd64 whpx 2", base("amd64", "whpx", 2), common(microvm, "-accel whpx -accel tcg", qemu64, "2", "device")},
		{"arm64 tcg 1", base("arm64", "tcg", 1), common("virt", "-accel tcg", "cortex-a72", "1", "pci")},
		{"arm64 hvf 4", base("arm64", "hvf", 4), common("virt,highmem=on", "-accel hvf", "host", "4", "pci")},
		{"arm64 kvm 12", base("arm64", "kvm", 12), common("virt,highmem=on,gic-version=3", "-accel kvm", "host", "12", "pci")},
		{"arm64 tcg 9", base("arm64", "tcg", 9), common("virt,gic-version=3", "-accel tcg", "cortex-a72", "9", "pci")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Args(tt.c); !slices.Equal(got, tt.want) {
				t.Errorf("got\n  %s\nwant\n  %s", strings.Join(got, " "), strings.Join(tt.want, " "))
			}
		})
	}
}

func TestArgsOptionalParts(t *testing.T) {
	c := Config{
		Name: "x", Arch: "amd64", Accel: "tcg", CPUs: 1, MemoryMiB: 512, Kernel: "k",
		Console: "/a,b/console", QMPSocket: "q,mp", Pidfile: "p", DiskCache: "unsafe",
		DataDisk: "/d,isk", Machine: "q35",
	}
	got := strings.Join(Args(c), " ")
	for _, want := range []string{
		"-machine q35 ",
		"path=/a,,b/console,append=on",
		"-qmp unix:q,,mp,server=on",
		"file=/d,,isk,format=raw,if=none,id=data,cache=unsafe,",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("argv lacks %q:\n%s", want, got)
		}
	}
	c.DataDisk = ""
	got = strings.Join(Args(c), " ")
	for _, absent := range []string{"-initrd", "-drive", "virtio-blk"} {
		if strings.Contains(got, absent) {
			t.Errorf("argv has %s without an initrd or disk:\n%s", absent, got)
		}
	}
}

func TestGuestLateModules(t *testing.T) {
	d := New(Options{})
	for _, tt := range []struct {
		arch string
		want []string
	}{
		{"amd64", []string{"button", "evdev", "virtio_balloon", "virtio_rng"}},
		{"arm64", []string{"evdev", "virtio_balloon"}},
	} {
		if got := d.GuestLateModules(tt.arch); !slices.Equal(got, tt.want) {
			t.Errorf("GuestLateModules(%s) = %v, want %v", tt.arch, got, tt.want)
		}
	}
}

func TestGuestModules(t *testing.T) {
	d := New(Options{})
	tests := []struct {
		arch string
		want []string
	}{
		{"amd64", []string{"virtio_mmio", "virtio_net"}},
		{"arm64", []string{"virtio_pci", "virtio_rng", "virtio_net"}},
	}
	for _, tt := range tests {
		if got := d.GuestModules(tt.arch); !slices.Equal(got, tt.want) {
			t.Errorf("GuestModules(%s) = %v, want %v", tt.arch, got, tt.want)
		}
	}
}
