package cli

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"

	"github.com/vmbox/vmbox/guest/api"
)

// registryAuth finds credentials for ref's registry in the docker-style
// config.json ($DOCKER_CONFIG/config.json or ~/.docker/config.json), so a
// user logged in with docker login can pull private images. Credential
// helpers (credsStore) are not consulted.
func registryAuth(ref string) *api.RegistryAuth {
	dir := os.Getenv("DOCKER_CONFIG")
	if dir == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			return nil
		}
		dir = filepath.Join(home, ".docker")
	}
	b, err := os.ReadFile(filepath.Join(dir, "config.json"))
	if err != nil {
		return nil
	}
	var cfg struct {
		Auths map[string]api.RegistryAuth `json:"auths"`
	}
	if json.Unmarshal(b, &cfg) != nil {
		return nil
	}
	host := registryHost(ref)
	for key, a := range cfg.Auths {
		k := strings.TrimPrefix(strings.TrimPrefix(key, "https://"), "http://")
		k = strings.TrimSuffix(strings.TrimSuffix(k, "/v1/"), "/")
		if k == host || (host == "docker.io" && (k == "index.docker.io" || k == "registry-1.docker.io")) {
			a := a
			return &a
		}
	}
	return nil
}

// registryHost is the registry part of an image reference, "docker.io"
// when the reference names none.
func registryHost(ref string) string {
	first, _, found := strings.Cut(ref, "/")
	if found && (strings.ContainsAny(first, ".:") || first == "localhost") {
		return first
	}
	return "docker.io"
}
