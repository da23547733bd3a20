// Command vmimage builds the vmbox guest kernel and initramfs from the
// Debian packages pinned in vmimage/debian.lock, or (with -update-lock)
// pins the archive's current versions. Run it from the repository root.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"

	"github.com/vmbox/vmbox/vmimage"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "vmimage:", err)
		os.Exit(1)
	}
}

// flagSet reports whether the command line set the named flag.
func flagSet(fs *flag.FlagSet, name string) bool {
	set := false
	fs.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	return set
}

func run() error {
	fs := flag.NewFlagSet("vmimage", flag.ContinueOnError)
	arch := fs.String("arch", "amd64", "guest architecture: amd64 or arm64 (with -update-lock, a comma-separated list; default: every architecture in the lock)")
	agent := fs.String("agent", "", "static vmbox-agent binary for -arch; becomes /init (required to build)")
	out := fs.String("out", "", "output directory (default build/image/<arch>)")
	cache := fs.String("cache", filepath.Join("build", "cache", "debs"), "directory of downloaded .debs")
	lock := fs.String("lock", vmimage.DefaultLockPath, "lock file of pinned packages")
	update := fs.Bool("update-lock", false, "pin the Debian archive's current versions in the lock file (uses apt-cache; run apt-get update first) instead of building")
	zlevel := fs.Int("zstd-level", 19, "zstd level for kernel.zst (1-19)")
	quiet := fs.Bool("q", false, "print only errors")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: vmimage -arch amd64 -agent PATH [-out DIR] [-cache DIR] [-lock FILE]\n       vmimage -update-lock [-arch amd64,arm64] [-lock FILE]\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(os.Args[1:]); err != nil {
		if err == flag.ErrHelp {
			return nil
		}
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	logf := func(format string, args ...any) {
		if !*quiet {
			fmt.Fprintf(os.Stderr, "vmimage: "+format+"\n", args...)
		}
	}

	if *update {
		arches := strings.Split(*arch, ",")
		if !flagSet(fs, "arch") {
			if l, err := vmimage.ReadLock(*lock); err == nil {
				arches = l.Arches()
			}
		}
		changes, err := vmimage.UpdateLock(ctx, *lock, arches)
		if err != nil {
			return err
		}
		if len(changes) == 0 {
			logf("%s is up to date", *lock)
		}
		for _, c := range changes {
			fmt.Println(c)
		}
		return nil
	}

	if *agent == "" {
		return fmt.Errorf("-agent is required: the static vmbox-agent binary for %s (e.g. CGO_ENABLED=0 GOARCH=%s go build -o build/vmbox-agent-%s ./cmd/vmbox-agent)", *arch, *arch, *arch)
	}
	if *out == "" {
		*out = filepath.Join("build", "image", *arch)
	}
	man, err := vmimage.Build(ctx, vmimage.Config{
		Arch: *arch, Agent: *agent, OutDir: *out, CacheDir: *cache, LockPath: *lock,
		ZstdLevel: *zlevel, Logf: logf,
	})
	if err != nil {
		return err
	}
	logf("built %s image, kernel %s, in %s:", man.Arch, man.KernelVersion, *out)
	for _, name := range []string{vmimage.KernelFile, vmimage.KernelZstFile, vmimage.InitrdFile} {
		o := man.Outputs[name]
		logf("  %-11s %6.1f MB  sha256 %s", name, float64(o.Size)/1e6, o.SHA256)
	}
	return nil
}
