package cli

import (
	"encoding/json"
	"strings"

	"github.com/vmbox/vmbox/guest/api"
)

// registryAuth finds credentials for ref's registry where docker login
// keeps them: a credential helper config.json names (credHelpers, then
// credsStore), else config.json's auths ($DOCKER_CONFIG or ~/.docker).
func registryAuth(ref string) *api.RegistryAuth {
	doc, _, err := readDockerConfig()
	if err != nil {
		return nil
	}
	host := registryHost(ref)
	keys := []string{host}
	if host == "docker.io" {
		keys = []string{dockerHubServer, "index.docker.io", "registry-1.docker.io", "docker.io"}
	}
	for _, k := range keys {
		if helper := credentialHelper(doc, k); helper != "" {
			if user, secret, ok := helperCredentials(helper, k); ok {
				if user == "<token>" {
					return &api.RegistryAuth{IdentityToken: secret}
				}
				return &api.RegistryAuth{Username: user, Password: secret}
			}
		}
	}
	var auths map[string]api.RegistryAuth
	if json.Unmarshal(doc["auths"], &auths) != nil {
		return nil
	}
	for key, a := range auths {
		k := strings.TrimPrefix(strings.TrimPrefix(key, "https://"), "http://")
		k = strings.TrimSuffix(strings.TrimSuffix(k, "/v1/"), "/")
		if k == host || (host == "docker.io" && (k == "index.docker.io" || k == "registry-1.docker.io")) {
			if a.Auth == "" && a.Username == "" && a.IdentityToken == "" && a.RegistryToken == "" {
				continue // an empty entry: the helper has it, or nobody
			}
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
