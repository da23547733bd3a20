package image

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"runtime"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"golang.org/x/sync/errgroup"

	"github.com/vmbox/vmbox/guest/api"
)

// PullOptions tune a pull.
type PullOptions struct {
	// Platform is "os/arch[/variant]"; empty means linux/<runtime.GOARCH>.
	// It picks the image out of a multi-platform index.
	Platform string
	// Auth is the credential for the image's registry (a docker config.json
	// "auths" entry the host sent). Nil means AuthConfigPath, then anonymous
	// (registries that hand out anonymous bearer tokens, like Docker Hub,
	// still work).
	Auth *api.RegistryAuth
	// AuthConfigPath names a docker config.json to take the registry's
	// "auths" entry from when Auth is nil.
	AuthConfigPath string
	// InsecureRegistries are hosts (host[:port]) that may be reached over
	// plain HTTP. Loopback and private addresses always may, as with Docker.
	InsecureRegistries []string
	// Transport replaces the default HTTP transport (tests, proxies).
	Transport http.RoundTripper
}

// maxManifestSize bounds the manifests and configs read into memory.
const maxManifestSize = 8 << 20

// pullJobs is how many layers are fetched at once, as Docker does.
const pullJobs = 3

// Pull fetches ref from its registry into the store and tags it, reporting
// Docker-style progress through progress (which may be nil; it is never
// called concurrently). Layers already in the store are not fetched again.
func (s *Store) Pull(ctx context.Context, ref string, opts PullOptions, progress func(api.PullProgress)) (*Image, error) {
	img, err := s.pull(ctx, ref, opts, &reporter{fn: progress})
	if err != nil {
		return nil, fmt.Errorf("pull %s: %w", truncate(ref, 200), err)
	}
	return img, nil
}

func (s *Store) pull(ctx context.Context, refStr string, opts PullOptions, rep *reporter) (*Image, error) {
	ref, err := parseRef(refStr)
	if err != nil {
		return nil, err
	}
	reg := ref.ref.Context().Registry
	if allowHTTP(ctx, reg.RegistryStr(), opts.InsecureRegistries) {
		if ref, err = parseRef(refStr, name.Insecure); err != nil {
			return nil, err
		}
	}
	platform, err := parsePlatform(opts.Platform)
	if err != nil {
		return nil, err
	}
	auth, err := authenticator(opts, reg.RegistryStr())
	if err != nil {
		return nil, err
	}
	ropts := []remote.Option{remote.WithContext(ctx), remote.WithAuth(auth), remote.WithPlatform(platform), remote.WithUserAgent("vmbox")}
	if opts.Transport != nil {
		ropts = append(ropts, remote.WithTransport(opts.Transport))
	}
	puller, err := remote.NewPuller(ropts...)
	if err != nil {
		return nil, err
	}

	rep.send(api.PullProgress{ID: identifier(ref), Status: "Pulling from " + ref.ref.Context().RepositoryStr()})
	desc, err := puller.Get(ctx, ref.ref)
	if err != nil {
		return nil, registryError(err)
	}
	topDigest := desc.Digest.String()
	rimg, err := desc.Image()
	if err != nil {
		return nil, registryError(err)
	}
	rawManifest, err := rimg.RawManifest()
	if err != nil {
		return nil, registryError(err)
	}
	manifestDigest := sha256Digest(sha256Sum(rawManifest))
	mf, err := v1.ParseManifest(bytes.NewReader(rawManifest))
	if err != nil {
		return nil, fmt.Errorf("parse manifest: %w", err)
	}
	mediaType := string(mf.MediaType)
	if mediaType == "" {
		mediaType = string(desc.MediaType)
	}
	if err := checkManifest(mf); err != nil {
		return nil, err
	}
	configDigest := mf.Config.Digest.String()
	// Pinned before the store is looked at, so that a concurrent Remove
	// cannot collect what this pull has decided to reuse.
	s.pin(configDigest, manifestDigest)
	defer s.unpin(configDigest, manifestDigest)

	openLayer := func(h v1.Hash) (io.ReadCloser, error) {
		cl, err := rimg.LayerByDigest(h)
		if err != nil {
			return nil, registryError(err)
		}
		rc, err := cl.Compressed()
		return rc, registryError(err)
	}
	var rawConfig []byte
	var pf *prefetcher
	if s.hasBlob(configDigest) {
		rawConfig, err = s.readBlob(configDigest)
	} else {
		// The layers' diff IDs are in the config, but the first layer
		// requests need not wait for it: a round trip saved.
		pf = newPrefetcher(mf.Layers, s.hasBlob, openLayer)
		defer pf.close()
		rawConfig, err = rimg.RawConfigFile()
		err = registryError(err)
	}
	if err != nil {
		return nil, err
	}
	if got := sha256Digest(sha256Sum(rawConfig)); got != configDigest {
		return nil, fmt.Errorf("config %s: content has digest %s", configDigest, got)
	}
	cfg, err := v1.ParseConfigFile(bytes.NewReader(rawConfig))
	if err != nil {
		return nil, fmt.Errorf("parse image config: %w", err)
	}
	if len(cfg.RootFS.DiffIDs) != len(mf.Layers) {
		return nil, fmt.Errorf("manifest has %d layers but the config lists %d", len(mf.Layers), len(cfg.RootFS.DiffIDs))
	}

	jobs := make([]layerJob, len(mf.Layers))
	var pins []string
	for i, l := range mf.Layers {
		diffID := cfg.RootFS.DiffIDs[i].String()
		if _, err := digestHex(diffID); err != nil {
			return nil, fmt.Errorf("image config: %w", err)
		}
		h := l.Digest
		jobs[i] = layerJob{
			blob: h.String(), size: l.Size, mediaType: string(l.MediaType), diffID: diffID,
			open: func() (io.ReadCloser, error) {
				if rc, err, ok := pf.take(i); ok {
					return rc, err
				}
				return openLayer(h)
			},
		}
		pins = append(pins, jobs[i].blob, diffID)
	}
	s.pin(pins...)
	defer s.unpin(pins...)

	for _, j := range jobs {
		if !s.hasBlob(j.blob) || !s.hasLayer(j.diffID) {
			rep.status(shortID(j.blob), "Pulling fs layer")
		}
	}
	sizes := make([]int64, len(jobs))
	downloaded := make([]bool, len(jobs))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(pullJobs)
	for i, j := range jobs {
		g.Go(func() error {
			var err error
			sizes[i], downloaded[i], err = s.ensureLayer(gctx, j, rep)
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	if err := s.writeBlob(rawConfig, configDigest); err != nil {
		return nil, err
	}
	if err := s.writeBlob(rawManifest, manifestDigest); err != nil {
		return nil, err
	}
	if err := s.syncContent(); err != nil {
		return nil, err
	}

	rec := newRecord(configDigest, cfg, int64(len(rawConfig)), string(mf.Config.MediaType), manifestDigest, mediaType)
	for i, j := range jobs {
		rec.Layers = append(rec.Layers, layerRecord{Digest: j.blob, MediaType: j.mediaType, Size: j.size, DiffID: j.diffID, DiffSize: sizes[i]})
	}
	repoDigest := ref.repo + "@" + topDigest

	img, upToDate, err := s.commitPulled(rec, ref, repoDigest, slices.Contains(downloaded, true))
	if err != nil {
		return nil, err
	}
	rep.send(api.PullProgress{Status: "Digest: " + topDigest})
	if upToDate {
		rep.send(api.PullProgress{Status: "Status: Image is up to date for " + familiar(ref.canonical())})
	} else {
		rep.send(api.PullProgress{Status: "Status: Downloaded newer image for " + familiar(ref.canonical())})
	}
	return img, nil
}

// commitPulled records a pulled image and its name. upToDate reports that
// nothing changed: the name already pointed at this image and nothing was
// downloaded.
func (s *Store) commitPulled(rec *record, ref imageRef, repoDigest string, downloaded bool) (*Image, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	next := s.idx.clone()
	old := next.Images[rec.ID]
	if old != nil {
		rec.RepoDigests = old.RepoDigests
	}
	if !slices.Contains(rec.RepoDigests, repoDigest) {
		rec.RepoDigests = append(rec.RepoDigests, repoDigest)
	}
	next.Images[rec.ID] = rec
	upToDate := old != nil && !downloaded
	if ref.tag != "" {
		upToDate = upToDate && next.Tags[ref.canonical()] == rec.ID
		next.Tags[ref.canonical()] = rec.ID
	}
	if err := s.commit(next); err != nil {
		return nil, false, err
	}
	return s.image(rec), upToDate, nil
}

// identifier is the tag or digest a pull shows first ("latest: Pulling from ...").
func identifier(r imageRef) string {
	if r.tag != "" {
		return r.tag
	}
	return r.digest
}

// checkManifest accepts image manifests only (schema 1 and artifacts that
// are not images are refused), with valid digests throughout.
func checkManifest(mf *v1.Manifest) error {
	switch mf.MediaType {
	case types.DockerManifestSchema2, types.OCIManifestSchema1, "":
	default:
		return fmt.Errorf("unsupported manifest media type %s", mf.MediaType)
	}
	if _, err := digestHex(mf.Config.Digest.String()); err != nil {
		return fmt.Errorf("manifest config: %w", err)
	}
	for _, l := range mf.Layers {
		if _, err := digestHex(l.Digest.String()); err != nil {
			return fmt.Errorf("manifest layer: %w", err)
		}
		switch {
		case l.MediaType.IsLayer(), l.MediaType == "":
		default:
			return fmt.Errorf("unsupported layer media type %s", l.MediaType)
		}
	}
	return nil
}

// newRecord fills an image record from its parsed config.
func newRecord(configDigest string, cfg *v1.ConfigFile, configSize int64, configMediaType, manifestDigest, manifestMediaType string) *record {
	r := &record{
		ID:                configDigest,
		Manifest:          manifestDigest,
		ManifestMediaType: manifestMediaType,
		ConfigMediaType:   configMediaType,
		ConfigSize:        configSize,
		Created:           cfg.Created.Time,
		OS:                cfg.OS,
		Architecture:      cfg.Architecture,
		Variant:           cfg.Variant,
		Config: api.ImageConfig{
			Env:        cfg.Config.Env,
			Cmd:        cfg.Config.Cmd,
			Entrypoint: cfg.Config.Entrypoint,
			WorkingDir: cfg.Config.WorkingDir,
			User:       cfg.Config.User,
			Labels:     cfg.Config.Labels,
		},
	}
	for port := range cfg.Config.ExposedPorts {
		r.Config.ExposedPorts = append(r.Config.ExposedPorts, port)
	}
	slices.Sort(r.Config.ExposedPorts)
	for path := range cfg.Config.Volumes {
		r.Config.Volumes = append(r.Config.Volumes, path)
	}
	slices.Sort(r.Config.Volumes)
	return r
}

func parsePlatform(s string) (v1.Platform, error) {
	if s == "" {
		return v1.Platform{OS: "linux", Architecture: runtime.GOARCH}, nil
	}
	p, err := v1.ParsePlatform(s)
	if err != nil || p.OS == "" || p.Architecture == "" {
		return v1.Platform{}, fmt.Errorf("invalid platform %q: want os/arch[/variant]", s)
	}
	return *p, nil
}

// registryError turns the registry's "not found" answers into ErrNotFound
// and keeps the message on one line.
func registryError(err error) error {
	if err == nil {
		return nil
	}
	var te *transport.Error
	if errors.As(err, &te) {
		for _, d := range te.Errors {
			switch d.Code {
			case transport.ManifestUnknownErrorCode, transport.NameUnknownErrorCode:
				return fmt.Errorf("%w: %s", ErrNotFound, oneLine(d.Message))
			}
		}
		if te.StatusCode == http.StatusNotFound {
			return fmt.Errorf("%w: %s", ErrNotFound, oneLine(te.Error()))
		}
		if te.StatusCode == http.StatusUnauthorized || te.StatusCode == http.StatusForbidden {
			return fmt.Errorf("access denied (repository does not exist or needs credentials): %s", oneLine(te.Error()))
		}
	}
	return errors.New(oneLine(err.Error()))
}

// allowHTTP reports whether a registry may be reached over plain HTTP:
// when the user said so, or when it is on this machine or a private
// network (loopback, RFC 1918, link-local, the host's NAT address 10.0.2.2,
// host.vmbox.internal), as Docker does for its default insecure ranges.
// HTTPS is still tried first.
func allowHTTP(ctx context.Context, registry string, insecure []string) bool {
	host := registry
	if h, _, err := net.SplitHostPort(registry); err == nil {
		host = h
	}
	host = strings.Trim(host, "[]")
	for _, r := range insecure {
		r = strings.TrimPrefix(strings.TrimPrefix(r, "http://"), "https://")
		r = strings.TrimSuffix(r, "/")
		if r == registry || r == host {
			return true
		}
	}
	if host == "localhost" {
		return true
	}
	if ip := net.ParseIP(host); ip != nil {
		return privateIP(ip)
	}
	if registry == name.DefaultRegistry || registry == dockerHub || !strings.Contains(host, ".") && host != "" {
		// Docker Hub is always HTTPS; single-label names other than
		// localhost do not resolve in the guest.
		return false
	}
	lctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	addrs, err := net.DefaultResolver.LookupIPAddr(lctx, host)
	if err != nil || len(addrs) == 0 {
		return false
	}
	for _, a := range addrs {
		if !privateIP(a.IP) {
			return false
		}
	}
	return true
}

func privateIP(ip net.IP) bool {
	return ip.IsLoopback() || ip.IsPrivate() || ip.IsLinkLocalUnicast()
}

// authenticator picks the credential for registry.
func authenticator(opts PullOptions, registry string) (authn.Authenticator, error) {
	if a := opts.Auth; a != nil {
		return authn.FromConfig(authn.AuthConfig{Username: a.Username, Password: a.Password, Auth: a.Auth, IdentityToken: a.IdentityToken, RegistryToken: a.RegistryToken}), nil
	}
	if opts.AuthConfigPath != "" {
		a, err := authFromConfigFile(opts.AuthConfigPath, registry)
		if err != nil {
			return nil, err
		}
		if a != nil {
			return authn.FromConfig(*a), nil
		}
	}
	return authn.Anonymous, nil
}

// authFromConfigFile reads the "auths" entry for registry from a docker
// config.json. Credential helpers are not run: the host resolves them and
// sends the result.
func authFromConfigFile(path, registry string) (*authn.AuthConfig, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read registry credentials: %w", err)
	}
	var cf struct {
		Auths map[string]authn.AuthConfig `json:"auths"`
	}
	if err := json.Unmarshal(b, &cf); err != nil {
		return nil, fmt.Errorf("read registry credentials %s: %s", path, oneLine(err.Error()))
	}
	want := normalizeAuthKey(registry)
	for k, v := range cf.Auths {
		if normalizeAuthKey(k) == want {
			return &v, nil
		}
	}
	return nil, nil
}

// normalizeAuthKey maps the many spellings of a config.json key
// ("https://index.docker.io/v1/", "docker.io", "host:5000") to a host.
func normalizeAuthKey(k string) string {
	k = strings.TrimPrefix(strings.TrimPrefix(k, "https://"), "http://")
	if i := strings.IndexByte(k, '/'); i >= 0 {
		k = k[:i]
	}
	switch k {
	case name.DefaultRegistry, dockerHub, "registry-1.docker.io":
		return name.DefaultRegistry
	}
	return k
}

// prefetcher starts the requests for the first layers' blobs while the
// image config is still being fetched.
type prefetcher struct {
	slots []*prefetchSlot
}

type prefetchSlot struct {
	taken atomic.Bool
	ch    chan prefetched
}

type prefetched struct {
	rc  io.ReadCloser
	err error
}

func newPrefetcher(layers []v1.Descriptor, have func(string) bool, open func(v1.Hash) (io.ReadCloser, error)) *prefetcher {
	p := &prefetcher{slots: make([]*prefetchSlot, len(layers))}
	started := 0
	for i, l := range layers {
		if started == pullJobs {
			break
		}
		if _, err := digestHex(l.Digest.String()); err != nil || have(l.Digest.String()) {
			continue
		}
		started++
		slot := &prefetchSlot{ch: make(chan prefetched, 1)}
		p.slots[i] = slot
		go func() {
			rc, err := open(l.Digest)
			slot.ch <- prefetched{rc, err}
		}()
	}
	return p
}

// take returns layer i's prefetched stream, if one was started and not yet taken.
func (p *prefetcher) take(i int) (io.ReadCloser, error, bool) {
	if p == nil || p.slots[i] == nil || !p.slots[i].taken.CompareAndSwap(false, true) {
		return nil, nil, false
	}
	r := <-p.slots[i].ch
	return r.rc, r.err, true
}

// close releases the streams nobody took.
func (p *prefetcher) close() {
	for i := range p.slots {
		if rc, _, ok := p.take(i); ok && rc != nil {
			rc.Close()
		}
	}
}
