package e2e

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vmbox/vmbox/guest/image/imagetest"
)

// TestLogin: vmbox login checks the credentials with a registry that
// wants them (docker-registry with htpasswd) and stores them where docker
// login does: config.json's auths, or the credential helper it names.
func TestLogin(t *testing.T) {
	e := newEnvNoVM(t)
	reg := imagetest.NewRegistry(t, imagetest.RegistryOptions{User: "alice", Password: "s3cret"})
	cfg := filepath.Join(e.home, "docker-config", "config.json")
	if r := e.runStdin("wrong\n", "login", "-u", "alice", "--password-stdin", reg.Addr); r.code != 1 || !strings.Contains(r.stderr, "login to "+reg.Addr+" failed") {
		t.Errorf("login with a wrong password: %s", r)
	}
	if _, err := os.Stat(cfg); err == nil {
		t.Error("a failed login stored something")
	}
	if r := e.runStdin("s3cret\n", "login", "-u", "alice", "--password-stdin", reg.Addr); r.code != 0 || r.stdout != "Login Succeeded\n" {
		t.Fatalf("login: %s", r)
	}
	var doc struct {
		Auths map[string]struct{ Auth string } `json:"auths"`
	}
	b, _ := os.ReadFile(cfg)
	if err := json.Unmarshal(b, &doc); err != nil || doc.Auths[reg.Addr].Auth != "YWxpY2U6czNjcmV0" {
		t.Errorf("config.json after login: %s", b)
	}
	if r := e.run("logout", reg.Addr); r.code != 0 {
		t.Errorf("logout: %s", r)
	}
	b, _ = os.ReadFile(cfg)
	if strings.Contains(string(b), reg.Addr) {
		t.Errorf("config.json after logout: %s", b)
	}

	// With a credential helper named in config.json, the helper stores them.
	bin := t.TempDir()
	store := filepath.Join(bin, "stored")
	helper := "#!/bin/sh\ncase $1 in store) cat > " + store + ";; erase) rm -f " + store + ";; get) cat " + store + ";; esac\n"
	os.WriteFile(filepath.Join(bin, "docker-credential-e2e"), []byte(helper), 0o755)
	os.WriteFile(cfg, []byte(`{"credsStore":"e2e","experimental":"kept"}`), 0o600)
	e.extra = append(e.extra, "PATH="+bin+":"+os.Getenv("PATH"))
	if r := e.runStdin("s3cret\n", "login", "-u", "alice", "--password-stdin", reg.Addr); r.code != 0 {
		t.Fatalf("login with a helper: %s", r)
	}
	if b, _ := os.ReadFile(store); !strings.Contains(string(b), `"Secret":"s3cret"`) {
		t.Errorf("the helper stored %s", b)
	}
	if b, _ := os.ReadFile(cfg); strings.Contains(string(b), "s3cret") || !strings.Contains(string(b), "kept") {
		t.Errorf("config.json with a helper: %s", b)
	}
}
