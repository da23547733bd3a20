// Command testinit is the /init the vmimage tests boot in place of the
// vmbox agent. By default it only prints a marker and reboots (the bare-boot
// floor: kernel plus initramfs, no agent work). With vmboxcheck=1 on the
// kernel command line (the kernel hands such words to init as environment
// variables) it first exercises the image: it loads every module in
// /etc/vmbox/modules.txt in file order, runs busybox, makes an ext4 file
// system with the shipped mke2fs, and parses the CA bundle.
package main

import (
	"bufio"
	"bytes"
	"crypto/x509"
	"encoding/binary"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

const (
	markerDone  = "VMBOX-TESTINIT-DONE"
	markerCheck = "VMBOX-CHECK-OK"
	markerFail  = "VMBOX-CHECK-FAIL"
)

func main() {
	if os.Getenv("vmboxcheck") == "1" {
		if summary, err := check(); err != nil {
			fmt.Printf("%s: %v\n", markerFail, err)
		} else {
			fmt.Printf("%s %s\n", markerCheck, summary)
		}
	}
	fmt.Println(markerDone)
	syscall.Sync()
	// With qemu -no-reboot a reboot request ends QEMU, on every machine type.
	_ = syscall.Reboot(syscall.LINUX_REBOOT_CMD_RESTART)
	select {}
}

func check() (string, error) {
	if st, err := os.Stat("/dev/console"); err != nil || st.Mode()&os.ModeCharDevice == 0 {
		return "", fmt.Errorf("/dev/console is not a character device: %v", err)
	}
	for _, m := range []struct{ src, dst, typ string }{{"proc", "/proc", "proc"}, {"sysfs", "/sys", "sysfs"}, {"devtmpfs", "/dev", "devtmpfs"}} {
		if err := syscall.Mount(m.src, m.dst, m.typ, 0, ""); err != nil {
			return "", fmt.Errorf("mount %s: %w", m.dst, err)
		}
	}
	n, err := loadModules()
	if err != nil {
		return "", err
	}
	if out, err := exec.Command("/bin/sh", "-c", "echo busybox-$((40+2))").CombinedOutput(); err != nil || strings.TrimSpace(string(out)) != "busybox-42" {
		return "", fmt.Errorf("busybox sh: %v: %q", err, out)
	}
	if err := mkfs(); err != nil {
		return "", err
	}
	certs, err := countCerts("/etc/ssl/certs/ca-certificates.crt")
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("modules=%d certs=%d", n, certs), nil
}

// loadModules loads every module of modules.txt in file order, checking on
// the way that each line's dependencies were loaded before it.
func loadModules() (int, error) {
	f, err := os.Open("/etc/vmbox/modules.txt")
	if err != nil {
		return 0, err
	}
	defer f.Close()
	loaded := map[string]bool{}
	sc := bufio.NewScanner(f)
	n := 0
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) != 3 {
			return n, fmt.Errorf("modules.txt: bad line %q", sc.Text())
		}
		if fields[2] != "-" {
			for _, d := range strings.Split(fields[2], ",") {
				if !loaded[d] {
					return n, fmt.Errorf("modules.txt: %s listed before its dependency %s", fields[0], d)
				}
			}
		}
		mf, err := os.Open(fields[1])
		if err != nil {
			return n, err
		}
		err = unix.FinitModule(int(mf.Fd()), "", 0)
		mf.Close()
		if err != nil && !errors.Is(err, unix.EEXIST) {
			return n, fmt.Errorf("finit_module %s: %w", fields[0], err)
		}
		loaded[fields[0]] = true
		n++
	}
	return n, sc.Err()
}

func mkfs() error {
	const img = "/tmp/disk.img"
	if err := os.WriteFile(img, nil, 0o600); err != nil {
		return err
	}
	if err := os.Truncate(img, 32<<20); err != nil {
		return err
	}
	out, err := exec.Command("/sbin/mkfs.ext4", "-q", "-F", "-E", "lazy_itable_init=1,lazy_journal_init=1,nodiscard", img).CombinedOutput()
	if err != nil {
		return fmt.Errorf("mkfs.ext4: %v: %s", err, out)
	}
	f, err := os.Open(img)
	if err != nil {
		return err
	}
	defer f.Close()
	sb := make([]byte, 1024)
	if _, err := f.ReadAt(sb, 1024); err != nil {
		return err
	}
	// ext superblock: magic at 0x38, incompat features at 0x60 (0x40 = extents).
	if binary.LittleEndian.Uint16(sb[0x38:]) != 0xEF53 {
		return errors.New("mkfs.ext4 wrote no ext superblock")
	}
	if binary.LittleEndian.Uint32(sb[0x60:])&0x40 == 0 {
		return errors.New("mkfs.ext4 made a file system without extents (not ext4)")
	}
	return os.Remove(img)
}

func countCerts(path string) (int, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	n := 0
	for {
		var blk *pem.Block
		blk, b = pem.Decode(b)
		if blk == nil {
			break
		}
		if _, err := x509.ParseCertificate(blk.Bytes); err != nil {
			return n, fmt.Errorf("%s: certificate %d: %w", path, n+1, err)
		}
		n++
	}
	if len(bytes.TrimSpace(b)) != 0 || n == 0 {
		return n, fmt.Errorf("%s: %d certificates, then unparsable data", path, n)
	}
	return n, nil
}
