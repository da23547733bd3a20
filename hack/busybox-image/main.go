// Command busybox-image writes a docker-save archive of a busybox image
// built from Debian's busybox-static, so the main job (hack/run.sh) can run
// a container on a machine that cannot reach Docker Hub.
package main

import (
	"archive/tar"
	"bytes"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"sort"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

func main() {
	busybox := flag.String("busybox", "/bin/busybox", "static busybox binary")
	out := flag.String("o", "build/busybox.tar", "archive to write")
	tag := flag.String("tag", "busybox:latest", "image reference")
	flag.Parse()
	if err := run(*busybox, *out, *tag); err != nil {
		fmt.Fprintln(os.Stderr, "busybox-image: "+err.Error())
		os.Exit(1)
	}
}

func run(busybox, out, tag string) error {
	bin, err := os.ReadFile(busybox)
	if err != nil {
		return fmt.Errorf("%w (install busybox-static)", err)
	}
	list, err := exec.Command(busybox, "--list").Output()
	if err != nil {
		return fmt.Errorf("busybox --list: %w", err)
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	add := func(h tar.Header, body []byte) error {
		h.Size = int64(len(body))
		if err := tw.WriteHeader(&h); err != nil {
			return err
		}
		_, err := tw.Write(body)
		return err
	}
	dirs := map[string]int64{"bin/": 0o755, "dev/": 0o755, "etc/": 0o755, "proc/": 0o555, "root/": 0o700, "sys/": 0o555, "tmp/": 0o1777}
	names := make([]string, 0, len(dirs))
	for d := range dirs {
		names = append(names, d)
	}
	sort.Strings(names)
	for _, d := range names {
		if err := add(tar.Header{Name: d, Typeflag: tar.TypeDir, Mode: dirs[d]}, nil); err != nil {
			return err
		}
	}
	if err := add(tar.Header{Name: "bin/busybox", Typeflag: tar.TypeReg, Mode: 0o755}, bin); err != nil {
		return err
	}
	applets := strings.Fields(string(list))
	sort.Strings(applets)
	for _, a := range applets {
		if a == "busybox" || strings.Contains(a, "/") {
			continue
		}
		if err := add(tar.Header{Name: "bin/" + a, Typeflag: tar.TypeSymlink, Linkname: "busybox", Mode: 0o777}, nil); err != nil {
			return err
		}
	}
	if err := add(tar.Header{Name: "etc/passwd", Typeflag: tar.TypeReg, Mode: 0o644}, []byte("root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n")); err != nil {
		return err
	}
	if err := add(tar.Header{Name: "etc/group", Typeflag: tar.TypeReg, Mode: 0o644}, []byte("root:x:0:\nnobody:x:65534:\n")); err != nil {
		return err
	}
	if err := tw.Close(); err != nil {
		return err
	}
	layerBytes := buf.Bytes()
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(layerBytes)), nil })
	if err != nil {
		return err
	}
	img, err := mutate.AppendLayers(empty.Image, layer)
	if err != nil {
		return err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return err
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", runtime.GOARCH
	cf.Config = v1.Config{Env: []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}, Cmd: []string{"sh"}}
	if img, err = mutate.ConfigFile(img, cf); err != nil {
		return err
	}
	ref, err := name.NewTag(tag)
	if err != nil {
		return err
	}
	return tarball.WriteToFile(out, ref, img)
}
