package cli

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/vmbox/vmbox/guest/api"
	"github.com/vmbox/vmbox/host/instance"
)

// dockerHubServer is the key docker login stores Docker Hub's credentials
// under; dockerHubHost the registry it names.
const (
	dockerHubServer = "https://index.docker.io/v1/"
	dockerHubHost   = "docker.io"
)

func (a *app) loginCommand() *cobra.Command {
	var user, password string
	var passwordStdin bool
	c := &cobra.Command{
		Use:   "login [flags] [SERVER]",
		Short: "Log in to a registry (stored where docker login stores it)",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			server := ""
			if len(args) == 1 {
				server = args[0]
			}
			if passwordStdin {
				if password != "" {
					return usageError("--password and --password-stdin are exclusive")
				}
				b, err := io.ReadAll(cmd.InOrStdin())
				if err != nil {
					return err
				}
				password = strings.TrimRight(string(b), "\r\n")
			}
			if user == "" || password == "" {
				return usageError("login needs --username and --password (or --password-stdin)")
			}
			host, key := loginServer(server)
			// The guest checks them with the registry, as Docker's daemon
			// does for docker login: its network is the one pulls use.
			cl, err := a.connectOrStart(cmd.Context(), false)
			if err != nil {
				return err
			}
			defer cl.Close()
			if err := cl.Call(cmd.Context(), api.OpAuth, api.AuthArgs{Server: host, Username: user, Password: password, InsecureRegistries: a.insecureRegistries}, nil); err != nil {
				return &ExitError{Code: 1, Message: "login to " + host + " failed: " + firstLine(err.Error())}
			}
			if err := storeCredentials(key, user, password); err != nil {
				return err
			}
			fmt.Fprintln(a.stdout, "Login Succeeded")
			return nil
		},
	}
	c.Flags().StringVarP(&user, "username", "u", "", "user name")
	c.Flags().StringVarP(&password, "password", "p", "", "password or token")
	c.Flags().BoolVar(&passwordStdin, "password-stdin", false, "read the password from stdin")
	return c
}

func (a *app) logoutCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "logout [SERVER]",
		Short: "Forget a registry's credentials",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			server := ""
			if len(args) == 1 {
				server = args[0]
			}
			_, key := loginServer(server)
			fmt.Fprintf(a.stdout, "Removing login credentials for %s\n", key)
			return eraseCredentials(key)
		},
	}
}

// loginServer is the registry host to check and the key docker login
// stores its credentials under.
func loginServer(server string) (host, key string) {
	s := strings.TrimSuffix(strings.TrimPrefix(strings.TrimPrefix(server, "https://"), "http://"), "/")
	switch s {
	case "", "docker.io", "index.docker.io", "registry-1.docker.io", "index.docker.io/v1":
		return dockerHubHost, dockerHubServer
	}
	return s, s
}

// dockerConfigPath is docker's config.json.
func dockerConfigPath() (string, error) {
	dir := os.Getenv("DOCKER_CONFIG")
	if dir == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			return "", err
		}
		dir = filepath.Join(home, ".docker")
	}
	return filepath.Join(dir, "config.json"), nil
}

// readDockerConfig reads config.json as a document whose other fields
// are kept as they are.
func readDockerConfig() (map[string]json.RawMessage, string, error) {
	path, err := dockerConfigPath()
	if err != nil {
		return nil, "", err
	}
	doc := map[string]json.RawMessage{}
	b, err := os.ReadFile(path)
	if err != nil && !os.IsNotExist(err) {
		return nil, "", err
	}
	if len(b) > 0 {
		if err := json.Unmarshal(b, &doc); err != nil {
			return nil, "", fmt.Errorf("%s: %w", path, err)
		}
	}
	return doc, path, nil
}

// credentialHelper is the docker-credential-* helper config.json names
// for key (credHelpers, else credsStore), or "".
func credentialHelper(doc map[string]json.RawMessage, key string) string {
	var helpers map[string]string
	json.Unmarshal(doc["credHelpers"], &helpers)
	if h := helpers[key]; h != "" {
		return h
	}
	var store string
	json.Unmarshal(doc["credsStore"], &store)
	return store
}

// storeCredentials stores credentials as docker login does: with the
// configured credential helper, else base64 in config.json's auths.
func storeCredentials(key, user, password string) error {
	doc, path, err := readDockerConfig()
	if err != nil {
		return err
	}
	if helper := credentialHelper(doc, key); helper != "" {
		in, _ := json.Marshal(map[string]string{"ServerURL": key, "Username": user, "Secret": password})
		return runHelper(helper, "store", in, nil)
	}
	auths := map[string]json.RawMessage{}
	json.Unmarshal(doc["auths"], &auths)
	entry, _ := json.Marshal(map[string]string{"auth": base64.StdEncoding.EncodeToString([]byte(user + ":" + password))})
	auths[key] = entry
	doc["auths"], _ = json.Marshal(auths)
	return writeDockerConfig(path, doc)
}

func eraseCredentials(key string) error {
	doc, path, err := readDockerConfig()
	if err != nil {
		return err
	}
	if helper := credentialHelper(doc, key); helper != "" {
		if err := runHelper(helper, "erase", []byte(key), nil); err != nil {
			return err
		}
	}
	auths := map[string]json.RawMessage{}
	json.Unmarshal(doc["auths"], &auths)
	if _, ok := auths[key]; !ok {
		return nil
	}
	delete(auths, key)
	doc["auths"], _ = json.Marshal(auths)
	return writeDockerConfig(path, doc)
}

func writeDockerConfig(path string, doc map[string]json.RawMessage) error {
	b, err := json.MarshalIndent(doc, "", "\t")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	return instance.WriteFileAtomic(path, append(b, '\n'), 0o600)
}

// runHelper runs docker-credential-HELPER ACTION with in on stdin.
func runHelper(helper, action string, in []byte, out *bytes.Buffer) error {
	cmd := exec.Command("docker-credential-"+helper, action)
	cmd.Stdin = bytes.NewReader(in)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if out != nil {
		cmd.Stdout = out
	}
	if err := cmd.Run(); err != nil {
		msg := strings.TrimSpace(stderr.String())
		if out != nil && msg == "" {
			msg = strings.TrimSpace(out.String())
		}
		return fmt.Errorf("credential helper %s %s: %v %s", helper, action, err, msg)
	}
	return nil
}

// helperCredentials asks the helper for key's credentials.
func helperCredentials(helper, key string) (user, secret string, ok bool) {
	var out bytes.Buffer
	if runHelper(helper, "get", []byte(key), &out) != nil {
		return "", "", false
	}
	var c struct{ Username, Secret string }
	if json.NewDecoder(bufio.NewReader(&out)).Decode(&c) != nil || c.Secret == "" {
		return "", "", false
	}
	return c.Username, c.Secret, true
}
