package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"golang.org/x/crypto/ssh"

	"github.com/vmbox/vmbox/guest/api"
	"github.com/vmbox/vmbox/guest/api/sshproto"
	"github.com/vmbox/vmbox/guest/image/imagetest"
	"github.com/vmbox/vmbox/host/instance"
	"github.com/vmbox/vmbox/host/sshclient"
)

// httpdCmd serves a page with busybox httpd in the foreground.
func httpdCmd(page string) []string {
	return []string{"sh", "-c", "mkdir -p /www && echo " + page + " > /www/index.html && exec httpd -f -p 80 -h /www"}
}

// fetch GETs url from the host, retrying while the server starts.
func fetch(t *testing.T, url string) string {
	t.Helper()
	client := &http.Client{Timeout: 5 * time.Second}
	var lastErr error
	for i := 0; i < 50; i++ {
		resp, err := client.Get(url)
		if err == nil {
			b, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err == nil && resp.StatusCode == 200 {
				return string(b)
			}
			lastErr = fmt.Errorf("status %d, %v", resp.StatusCode, err)
		} else {
			lastErr = err
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("GET %s: %v", url, lastErr)
	return ""
}

// hostStats asks the instance's host process for its goroutines and files.
func hostStats(t *testing.T, e *env, name string) sshproto.HostStats {
	t.Helper()
	dir := filepath.Join(e.home, name)
	keys, err := instance.LoadKeys(dir)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := sshclient.Dial(ctx, filepath.Join(dir, instance.SocketFile), keys)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ok, payload, err := c.SSH().SendRequest(sshproto.ReqHostStats, true, nil)
	var m sshproto.JSONMessage
	var st sshproto.HostStats
	if err != nil || !ok || ssh.Unmarshal(payload, &m) != nil || json.Unmarshal([]byte(m.JSON), &st) != nil {
		t.Fatalf("host stats: ok=%v err=%v", ok, err)
	}
	return st
}

// listening reports whether some socket listens on TCP port at the
// host address hexAddr as /proc/net/tcp spells it ("0100007F" is
// 127.0.0.1, "00000000" is every address).
func listening(t *testing.T, hexAddr string, port int) bool {
	t.Helper()
	f, err := os.Open("/proc/net/tcp")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	want := fmt.Sprintf("%s:%04X", hexAddr, port)
	s := bufio.NewScanner(f)
	for s.Scan() {
		fl := strings.Fields(s.Text())
		if len(fl) > 3 && fl[1] == want && fl[3] == "0A" {
			return true
		}
	}
	return false
}

// networkCases check Docker's networking model through a VM: published
// ports, user networks with names, outbound traffic and bad input.
func networkCases(t *testing.T, tg *target, instName string) {
	bb := tg.reg + "/busybox"
	t.Run("published port serves the host on loopback only", func(t *testing.T) {
		port := freeLoopbackPort(t)
		r := tg.run(append([]string{"run", "-d", "--name", "web1", "-p", strconv.Itoa(port) + ":80", bb}, httpdCmd("hello-web1")...)...)
		if r.code != 0 {
			t.Fatalf("run -d -p: %s", r)
		}
		defer tg.run("rm", "-f", "web1")
		if got := fetch(t, fmt.Sprintf("http://127.0.0.1:%d/", port)); got != "hello-web1\n" {
			t.Fatalf("page %q", got)
		}
		if !listening(t, "0100007F", port) || listening(t, "00000000", port) {
			t.Fatalf("default binding: want 127.0.0.1:%d only", port)
		}
		// 127.0.0.2 is loopback too, but not the address published on.
		if c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.2:%d", port), 2*time.Second); err == nil {
			c.Close()
			t.Fatalf("127.0.0.2:%d accepted a connection; the default binding is 127.0.0.1", port)
		}
		out := tg.run("port", "web1")
		if out.code != 0 || !strings.Contains(out.stdout, fmt.Sprintf("80/tcp -> 127.0.0.1:%d", port)) {
			t.Fatalf("port: %s", out)
		}
		if ps := tg.run("ps"); !strings.Contains(ps.stdout, fmt.Sprintf("127.0.0.1:%d->80/tcp", port)) {
			t.Fatalf("ps PORTS: %s", ps)
		}
	})
	t.Run("0.0.0.0 binds every address", func(t *testing.T) {
		port := freeLoopbackPort(t)
		r := tg.run(append([]string{"run", "-d", "--name", "web2", "-p", fmt.Sprintf("0.0.0.0:%d:80", port), bb}, httpdCmd("hello-web2")...)...)
		if r.code != 0 {
			t.Fatalf("run: %s", r)
		}
		defer tg.run("rm", "-f", "web2")
		if !listening(t, "00000000", port) {
			t.Fatalf("0.0.0.0:%d is not listening", port)
		}
		if got := fetch(t, fmt.Sprintf("http://127.0.0.2:%d/", port)); got != "hello-web2\n" {
			t.Fatalf("page %q", got)
		}
	})
	t.Run("random host port and publish-all", func(t *testing.T) {
		img := imagetest.NewImage(t, v1.Config{
			Env: []string{imagetest.DefaultPath}, ExposedPorts: map[string]struct{}{"80/tcp": {}},
		}, imagetest.Layer(t, imagetest.BusyboxEntries(t)))
		imagetest.Push(t, img, tg.hostReg+"/exposed:latest")
		r := tg.run(append([]string{"run", "-d", "--name", "web3", "-P", tg.reg + "/exposed"}, httpdCmd("hello-web3")...)...)
		if r.code != 0 {
			t.Fatalf("run -P: %s", r)
		}
		defer tg.run("rm", "-f", "web3")
		out := tg.run("port", "web3", "80")
		hostPort := strings.TrimSpace(strings.Split(out.stdout, "\n")[0])
		if out.code != 0 || !strings.HasPrefix(hostPort, "127.0.0.1:") {
			t.Fatalf("port web3 80: %s", out)
		}
		if got := fetch(t, "http://"+hostPort+"/"); got != "hello-web3\n" {
			t.Fatalf("page %q", got)
		}
	})
	t.Run("UDP echo", func(t *testing.T) {
		port := freeLoopbackPort(t)
		// Debian's busybox has no UDP server: the echo is a static Go
		// program in a layer of its own.
		img := imagetest.NewImage(t, v1.Config{Env: []string{imagetest.DefaultPath}},
			imagetest.Layer(t, imagetest.BusyboxEntries(t)),
			imagetest.Layer(t, []imagetest.Entry{{Name: "udpecho", Mode: 0o755, Body: buildUDPEcho(t)}}))
		imagetest.Push(t, img, tg.hostReg+"/udpecho:latest")
		r := tg.run("run", "-d", "--name", "udp1", "-p", fmt.Sprintf("%d:7/udp", port), tg.reg+"/udpecho", "/udpecho", ":7")
		if r.code != 0 {
			t.Fatalf("run: %s", r)
		}
		defer tg.run("rm", "-f", "udp1")
		c, err := net.Dial("udp", fmt.Sprintf("127.0.0.1:%d", port))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		buf := make([]byte, 64)
		for i := 0; ; i++ {
			c.Write([]byte("ping-udp\n"))
			c.SetReadDeadline(time.Now().Add(time.Second))
			n, err := c.Read(buf)
			if err == nil && string(buf[:n]) == "ping-udp\n" {
				break
			}
			if i > 20 {
				t.Fatalf("no UDP echo: %v %q", err, buf[:n])
			}
		}
	})
	t.Run("user network: names, aliases, isolation", func(t *testing.T) {
		for _, n := range []string{"front", "back"} {
			if r := tg.run("network", "create", n); r.code != 0 {
				t.Fatalf("network create %s: %s", n, r)
			}
			defer tg.run("network", "rm", n)
		}
		r := tg.run(append([]string{"run", "-d", "--name", "api", "--network", "back", "--network-alias", "db", bb}, httpdCmd("from-api")...)...)
		if r.code != 0 {
			t.Fatalf("run api: %s", r)
		}
		defer tg.run("rm", "-f", "api")
		for _, name := range []string{"api", "db"} {
			r := tg.run("run", "--rm", "--network", "back", bb, "sh", "-c", "for i in 1 2 3 4 5 6 7 8 9 10; do timeout 2 wget -q -O- http://"+name+"/ && exit 0; sleep 0.5; done; exit 1")
			if r.code != 0 || r.stdout != "from-api\n" {
				t.Fatalf("by %s on the same network: %s", name, r)
			}
		}
		var ins []api.ContainerInspect
		if r := tg.run("inspect", "api"); r.code != 0 || json.Unmarshal([]byte(r.stdout), &ins) != nil || len(ins) != 1 {
			t.Fatalf("inspect api: %s", r)
		}
		ip := ins[0].NetworkSettings.Networks["back"].IPAddress
		if ip == "" {
			t.Fatalf("inspect api has no address on back: %+v", ins[0].NetworkSettings)
		}
		if r := tg.run("run", "--rm", "--network", "front", bb, "nslookup", "api"); r.code == 0 {
			t.Fatalf("a container on another network resolved api: %s", r)
		}
		if r := tg.run("run", "--rm", "--network", "front", bb, "timeout", "3", "wget", "-q", "-O-", "http://"+ip+"/"); r.code == 0 {
			t.Fatalf("a container on another network reached api at %s: %s", ip, r)
		}
		if r := tg.run("network", "rm", "back"); r.code != 125 || strings.Count(strings.TrimSpace(r.stderr), "\n") != 0 {
			t.Fatalf("removing a network in use: %s", r)
		}
	})
	t.Run("an internal network publishes nothing, as Docker", func(t *testing.T) {
		if r := tg.run("network", "create", "--internal", "sealed"); r.code != 0 {
			t.Fatalf("network create --internal: %s", r)
		}
		defer tg.run("network", "rm", "sealed")
		port := freeLoopbackPort(t)
		r := tg.run(append([]string{"run", "-d", "--name", "sealed1", "--network", "sealed", "-p", strconv.Itoa(port) + ":80", bb}, httpdCmd("sealed")...)...)
		if r.code != 0 {
			t.Fatalf("run -d -p on an internal network: %s", r)
		}
		defer tg.run("rm", "-f", "sealed1")
		if out := tg.run("port", "sealed1"); out.code != 0 || strings.TrimSpace(out.stdout) != "" {
			t.Fatalf("port: %s", out)
		}
		if c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), 2*time.Second); err == nil {
			c.Close()
			t.Fatalf("127.0.0.1:%d accepted a connection for a container on an internal network", port)
		}
	})
	t.Run("outbound reaches the host", func(t *testing.T) {
		// The test registry listens on the host's loopback.
		port := tg.reg[strings.LastIndex(tg.reg, ":")+1:]
		r := tg.run("run", "--rm", bb, "wget", "-q", "-O-", "http://host.vmbox.internal:"+port+"/v2/")
		if r.code != 0 {
			t.Fatalf("bridge container to host.vmbox.internal: %s", r)
		}
		r = tg.run("run", "--rm", bb, "cat", "/etc/hosts", "/etc/resolv.conf", "/etc/hostname")
		if r.code != 0 || !strings.Contains(r.stdout, "host.docker.internal") || !strings.Contains(r.stdout, "nameserver") {
			t.Fatalf("container /etc files: %s", r)
		}
	})
	t.Run("bad input is one line and exit 125", func(t *testing.T) {
		taken, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer taken.Close()
		takenPort := taken.Addr().(*net.TCPAddr).Port
		if r := tg.run("network", "create", "--subnet", "172.30.0.0/16", "pool1"); r.code != 0 {
			t.Fatalf("network create: %s", r)
		}
		defer tg.run("network", "rm", "pool1")
		cases := []struct {
			name string
			args []string
			want string
		}{
			{"taken port", []string{"run", "-d", "--name", "taken", "-p", fmt.Sprintf("%d:80", takenPort), bb, "sleep", "60"}, "already allocated"},
			{"unknown network", []string{"run", "--rm", "--network", "nope", bb, "true"}, "not found"},
			{"invalid -p", []string{"run", "--rm", "-p", "99999:80", bb, "true"}, "invalid"},
			{"overlapping subnet", []string{"network", "create", "--subnet", "172.30.1.0/24", "pool2"}, "overlap"},
		}
		for _, c := range cases {
			r := tg.run(c.args...)
			lines := strings.Split(strings.TrimSpace(r.stderr), "\n")
			if r.code != 125 || len(lines) != 1 || !strings.Contains(strings.ToLower(r.stderr), c.want) {
				t.Errorf("%s: want exit 125 and one line with %q: %s", c.name, c.want, r)
			}
		}
		tg.run("rm", "-f", "taken")
	})
	t.Run("1000 short connections leak nothing", func(t *testing.T) {
		port := freeLoopbackPort(t)
		r := tg.run("run", "-d", "--name", "echo1", "-p", fmt.Sprintf("%d:7", port), bb, "sh", "-c", "exec nc -ll -p 7 -e cat")
		if r.code != 0 {
			t.Fatalf("run: %s", r)
		}
		defer tg.run("rm", "-f", "echo1")
		addr := fmt.Sprintf("127.0.0.1:%d", port)
		roundTrip := func() error {
			c, err := net.DialTimeout("tcp", addr, 5*time.Second)
			if err != nil {
				return err
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(10 * time.Second))
			if _, err := c.Write([]byte("x\n")); err != nil {
				return err
			}
			c.(*net.TCPConn).CloseWrite() // half-close: the echo still comes back
			b, err := io.ReadAll(c)
			if err != nil || string(b) != "x\n" {
				return fmt.Errorf("echo %q, %v", b, err)
			}
			return nil
		}
		for i := 0; roundTrip() != nil; i++ {
			if i > 50 {
				t.Fatalf("echo server never answered: %v", roundTrip())
			}
			time.Sleep(200 * time.Millisecond)
		}
		before := hostStats(t, tg.e, instName)
		for i := 0; i < 1000; i++ {
			if err := roundTrip(); err != nil {
				t.Fatalf("connection %d: %v", i, err)
			}
		}
		var after sshproto.HostStats
		for i := 0; i < 50; i++ {
			after = hostStats(t, tg.e, instName)
			if after.Goroutines <= before.Goroutines+2 && after.OpenFiles <= before.OpenFiles+2 {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		if after.Goroutines > before.Goroutines+2 || after.OpenFiles > before.OpenFiles+2 {
			t.Fatalf("after 1000 connections the host process went from %+v to %+v", before, after)
		}
		t.Logf("host process before %+v, after %+v", before, after)
	})
}

// restartedPortCases start a published container, restart the VM, start
// the container again and fetch through its port.
func restartedPortCases(t *testing.T, tg *target) {
	bb := tg.reg + "/busybox"
	port := freeLoopbackPort(t)
	r := tg.run(append([]string{"run", "-d", "--name", "keep", "-p", strconv.Itoa(port) + ":80", bb}, httpdCmd("kept")...)...)
	if r.code != 0 {
		t.Fatalf("run: %s", r)
	}
	fetch(t, fmt.Sprintf("http://127.0.0.1:%d/", port))
	// Restart policies: "always" comes back with the VM by itself,
	// "unless-stopped" does not once stopped by hand.
	autoPort := freeLoopbackPort(t)
	if r := tg.run(append([]string{"run", "-d", "--name", "auto", "--restart", "always", "-p", strconv.Itoa(autoPort) + ":80", bb}, httpdCmd("auto")...)...); r.code != 0 {
		t.Fatalf("run --restart always: %s", r)
	}
	defer tg.run("rm", "-f", "auto")
	if r := tg.run("run", "-d", "--name", "held", "--restart", "unless-stopped", bb, "sleep", "600"); r.code != 0 {
		t.Fatalf("run --restart unless-stopped: %s", r)
	}
	defer tg.run("rm", "-f", "held")
	if r := tg.run("stop", "-t", "0", "held"); r.code != 0 {
		t.Fatalf("stop held: %s", r)
	}
	tg.e.must("stop")
	if c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), time.Second); err == nil {
		c.Close()
		t.Fatalf("port %d still accepts after the VM stopped", port)
	}
	tg.e.must("start")
	if r := tg.run("start", "keep"); r.code != 0 {
		t.Fatalf("start keep: %s", r)
	}
	if got := fetch(t, fmt.Sprintf("http://127.0.0.1:%d/", port)); got != "kept\n" {
		t.Fatalf("page after restart %q", got)
	}
	if got := fetch(t, fmt.Sprintf("http://127.0.0.1:%d/", autoPort)); got != "auto\n" {
		t.Fatalf("the --restart always container after the VM restart: %q", got)
	}
	var ins []api.ContainerInspect
	if r := tg.run("inspect", "held"); r.code != 0 || json.Unmarshal([]byte(r.stdout), &ins) != nil || len(ins) != 1 || ins[0].State.Status != "exited" {
		t.Fatalf("the unless-stopped container stopped by hand after the VM restart: %s", r)
	}
	if r := tg.run("rm", "-f", "keep"); r.code != 0 {
		t.Fatalf("rm: %s", r)
	}
	if r := tg.run("run", "--rm", "--restart", "always", bb, "true"); r.code != 125 || !strings.Contains(r.stderr, "Conflicting options: --restart and --rm") {
		t.Fatalf("--rm with --restart: %s", r)
	}
}

const udpEchoSource = `package main

import (
	"net"
	"os"
)

func main() {
	pc, err := net.ListenPacket("udp", os.Args[1])
	if err != nil {
		os.Stderr.WriteString(err.Error() + "\n")
		os.Exit(1)
	}
	buf := make([]byte, 65536)
	for {
		n, from, err := pc.ReadFrom(buf)
		if err != nil {
			os.Exit(1)
		}
		pc.WriteTo(buf[:n], from)
	}
}
`

// buildUDPEcho builds a static UDP echo server for the guest's
// architecture and returns the binary. (Busybox's wget -T crashes in
// Debian's static build, and its nc has no UDP: the tests avoid both.)
func buildUDPEcho(t *testing.T) []byte {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "main.go"), []byte(udpEchoSource), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "go.mod"), []byte("module udpecho\n\ngo 1.21\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "udpecho")
	cmd := exec.Command("go", "build", "-trimpath", "-ldflags=-s -w", "-o", out, ".")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+runtime.GOARCH, "GOWORK=off", "GOTOOLCHAIN=local", "GOFLAGS=")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build udpecho: %v: %s", err, b)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
