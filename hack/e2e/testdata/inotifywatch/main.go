// Command inotifywatch prints the inotify events on the directories it is
// given, one line each ("CREATE name", "MODIFY name", ...): the e2e tests
// run it in a container, since busybox has no inotifyd in Debian's build.
package main

import (
	"fmt"
	"os"
	"strings"
	"unsafe"

	"golang.org/x/sys/unix"
)

var names = []struct {
	mask uint32
	name string
}{
	{unix.IN_CREATE, "CREATE"}, {unix.IN_MODIFY, "MODIFY"}, {unix.IN_CLOSE_WRITE, "CLOSE_WRITE"},
	{unix.IN_DELETE, "DELETE"}, {unix.IN_ATTRIB, "ATTRIB"}, {unix.IN_MOVED_FROM, "MOVED_FROM"},
	{unix.IN_MOVED_TO, "MOVED_TO"}, {unix.IN_DELETE_SELF, "DELETE_SELF"},
}

func main() {
	fd, err := unix.InotifyInit1(unix.IN_CLOEXEC)
	if err != nil {
		fmt.Fprintln(os.Stderr, "inotify:", err)
		os.Exit(1)
	}
	var mask uint32
	for _, n := range names {
		mask |= n.mask
	}
	for _, d := range os.Args[1:] {
		if _, err := unix.InotifyAddWatch(fd, d, mask); err != nil {
			fmt.Fprintln(os.Stderr, "watch", d+":", err)
			os.Exit(1)
		}
	}
	fmt.Println("watching")
	buf := make([]byte, 64<<10)
	for {
		n, err := unix.Read(fd, buf)
		if err != nil {
			fmt.Fprintln(os.Stderr, "read:", err)
			os.Exit(1)
		}
		for off := 0; off+unix.SizeofInotifyEvent <= n; {
			ev := (*unix.InotifyEvent)(unsafe.Pointer(&buf[off]))
			start := off + unix.SizeofInotifyEvent
			name := strings.TrimRight(string(buf[start:start+int(ev.Len)]), "\x00")
			for _, m := range names {
				if ev.Mask&m.mask != 0 {
					fmt.Println(m.name, name)
				}
			}
			off = start + int(ev.Len)
		}
	}
}
