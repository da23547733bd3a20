package e2e

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vmbox/vmbox/guest/image/imagetest"
)

// loginCases: vmbox login has the guest check the credentials with a
// registry that wants them (docker-registry with htpasswd), stores them
// where docker login does (config.json's auths, or the credential helper
// it names), and push then uses them.
func loginCases(t *testing.T, tg *target) {
	e := tg.e
	reg := imagetest.NewRegistry(t, imagetest.RegistryOptions{User: "alice", Password: "s3cret"})
	server := "host.vmbox.internal:" + reg.Addr[strings.LastIndex(reg.Addr, ":")+1:]
	cfg := filepath.Join(e.home, "docker-config", "config.json")
	if r := tg.runStdin("wrong\n", "login", "-u", "alice", "--password-stdin", server); r.code != 1 || !strings.Contains(r.stderr, "login to "+server+" failed") {
		t.Errorf("login with a wrong password: %s", r)
	}
	if b, _ := os.ReadFile(cfg); strings.Contains(string(b), server) {
		t.Error("a failed login stored something")
	}
	if r := tg.runStdin("s3cret\n", "login", "-u", "alice", "--password-stdin", server); r.code != 0 || r.stdout != "Login Succeeded\n" {
		t.Fatalf("login: %s", r)
	}
	var doc struct {
		Auths map[string]struct{ Auth string } `json:"auths"`
	}
	b, _ := os.ReadFile(cfg)
	if err := json.Unmarshal(b, &doc); err != nil || doc.Auths[server].Auth != "YWxpY2U6czNjcmV0" {
		t.Errorf("config.json after login: %s", b)
	}
	// push with the stored credentials.
	dst := server + "/private/busybox:v1"
	tg.run("tag", tg.reg+"/busybox", dst)
	if r := tg.run("push", dst); r.code != 0 {
		t.Errorf("push with the stored credentials: %s", r)
	}
	if r := tg.run("logout", server); r.code != 0 {
		t.Errorf("logout: %s", r)
	}
	if b, _ := os.ReadFile(cfg); strings.Contains(string(b), server) {
		t.Errorf("config.json after logout: %s", b)
	}
	if r := tg.run("push", dst); r.code == 0 {
		t.Errorf("push without credentials was taken: %s", r)
	}

	// With a credential helper named in config.json, the helper keeps them.
	bin := t.TempDir()
	store := filepath.Join(bin, "stored")
	helper := "#!/bin/sh\ncase $1 in store) cat > " + store + ";; erase) rm -f " + store + ";; get) cat " + store + ";; esac\n"
	os.WriteFile(filepath.Join(bin, "docker-credential-e2e"), []byte(helper), 0o755)
	keep, _ := os.ReadFile(cfg)
	defer os.WriteFile(cfg, keep, 0o600)
	os.WriteFile(cfg, []byte(`{"credsStore":"e2e","experimental":"kept"}`), 0o600)
	saved := e.extra
	defer func() { e.extra = saved }()
	e.extra = append(append([]string{}, e.extra...), "PATH="+bin+":"+os.Getenv("PATH"))
	if r := tg.runStdin("s3cret\n", "login", "-u", "alice", "--password-stdin", server); r.code != 0 {
		t.Fatalf("login with a helper: %s", r)
	}
	if b, _ := os.ReadFile(store); !strings.Contains(string(b), `"Secret":"s3cret"`) {
		t.Errorf("the helper stored %s", b)
	}
	if b, _ := os.ReadFile(cfg); strings.Contains(string(b), "s3cret") || !strings.Contains(string(b), "kept") {
		t.Errorf("config.json with a helper: %s", b)
	}
	if r := tg.run("push", dst); r.code != 0 {
		t.Errorf("push with the helper's credentials: %s", r)
	}
}
