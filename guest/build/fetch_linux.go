package build

import (
	"context"
	"fmt"
	"hash"
	"io"
	"net/http"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"
)

// fetchTimeout bounds one ADD download that stops sending.
const fetchTimeout = 10 * time.Minute

// fetchURLs downloads the http(s) sources of an ADD into temporary files,
// each named as its URL's last path element: the map goes from the source
// as written (after expansion) to the file.
func fetchURLs(ctx context.Context, in Instruction, vars map[string]string, out io.Writer) (map[string]string, error) {
	if len(in.Args) < 2 {
		return nil, nil
	}
	var files map[string]string
	for _, src := range in.Args[:len(in.Args)-1] {
		src = expand(src, vars)
		if !strings.HasPrefix(src, "http://") && !strings.HasPrefix(src, "https://") {
			if strings.Contains(src, "://") {
				return files, fmt.Errorf("Dockerfile line %d: ADD %s: only http and https URLs are fetched", in.Line, src)
			}
			continue
		}
		if files == nil {
			files = map[string]string{}
		}
		f, err := fetch(ctx, src)
		if err != nil {
			return files, fmt.Errorf("Dockerfile line %d: ADD %s: %w", in.Line, src, err)
		}
		fmt.Fprintf(out, "Downloading %s\n", src)
		files[src] = f
	}
	return files, nil
}

func fetch(ctx context.Context, src string) (string, error) {
	u, err := url.Parse(src)
	if err != nil {
		return "", err
	}
	base := path.Base(u.Path)
	if base == "/" || base == "." || base == "" {
		return "", fmt.Errorf("cannot determine a file name from the URL; name the destination file")
	}
	ctx, cancel := context.WithTimeout(ctx, fetchTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, src, nil)
	if err != nil {
		return "", err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("GET: %s", resp.Status)
	}
	dir, err := os.MkdirTemp("", "vmbox-add-")
	if err != nil {
		return "", err
	}
	name := filepath.Join(dir, base)
	f, err := os.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err == nil {
		_, err = io.Copy(f, resp.Body)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
	}
	if err != nil {
		os.RemoveAll(dir)
		return "", err
	}
	if t, err := http.ParseTime(resp.Header.Get("Last-Modified")); err == nil {
		os.Chtimes(name, t, t)
	}
	return name, nil
}

// removeDownloads removes the files fetchURLs made.
func removeDownloads(files map[string]string) {
	for _, f := range files {
		os.RemoveAll(filepath.Dir(f))
	}
}

// hashFile writes f's content into h.
func hashFile(h hash.Hash, name string) error {
	f, err := os.Open(name)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = io.Copy(h, f)
	return err
}
