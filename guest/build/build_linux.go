package build

import (
	"archive/tar"
	"bufio"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	securejoin "github.com/cyphar/filepath-securejoin"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/vmbox/vmbox/guest/api"
	"github.com/vmbox/vmbox/guest/container"
	"github.com/vmbox/vmbox/guest/engine"
	"github.com/vmbox/vmbox/guest/image"
)

// Options say what to build.
type Options struct {
	// Context is the unpacked build context; Dockerfile is the file's
	// path in it (default "Dockerfile").
	Context, Dockerfile string
	Tags                []string
	BuildArgs           map[string]string
	Target              string
	Labels              map[string]string
	// Pull pulls FROM images even when they are stored.
	Pull bool
	// NoCache runs every step (its images still become the cache).
	NoCache bool
	// Pull options for FROM images that are missing (or Pull).
	PullOptions engine.PullOptions
	// Auths are credentials by registry host ("docker.io" for Docker
	// Hub) for the images FROM and COPY --from pull.
	Auths map[string]api.RegistryAuth
}

// Builder builds with an engine and its image store.
type Builder struct {
	Engine *engine.Engine
	Images *image.Store
}

// stage is one FROM ... of a Dockerfile as it is built.
type stage struct {
	name    string
	imageID string // "" for scratch before a layer
	cfg     v1.Config
	args    map[string]string // the ARGs declared in the stage, with values
}

// predefinedArgs may be given with --build-arg without an ARG, as Docker's.
var predefinedArgs = []string{"HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "FTP_PROXY", "ftp_proxy", "NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy"}

// Build runs the Dockerfile and returns the image it made, writing
// Docker's classic output (Step N/M : ..., the steps' output, Successfully
// built ...) to out.
func (b *Builder) Build(ctx context.Context, opts Options, out io.Writer) (string, error) {
	df := opts.Dockerfile
	if df == "" {
		df = "Dockerfile"
	}
	dfPath, err := securejoin.SecureJoin(opts.Context, df)
	if err != nil {
		return "", err
	}
	src, err := os.ReadFile(dfPath)
	if err != nil {
		return "", fmt.Errorf("cannot locate specified Dockerfile: %s", df)
	}
	ins, err := Parse(string(src))
	if err != nil {
		return "", err
	}
	// Instructions up to the target stage (all without a target).
	total := len(ins)
	if opts.Target != "" {
		found := false
		for i, in := range ins {
			if in.Cmd == "FROM" && len(in.Args) == 3 && strings.EqualFold(in.Args[1], "AS") && in.Args[2] == opts.Target {
				for j := i + 1; j <= len(ins); j++ {
					if j == len(ins) || ins[j].Cmd == "FROM" {
						total, found = j, true
						break
					}
				}
				break
			}
		}
		if !found {
			return "", fmt.Errorf("failed to reach build target %s in Dockerfile", opts.Target)
		}
	}
	var (
		stages     []*stage
		cur        *stage
		globalArgs = map[string]string{}
	)
	buildArgs := opts.BuildArgs
	steps := slices.Clone(ins[:total])
	// trigger marks the ONBUILD instructions of a FROM image, run right
	// after its FROM; they are not steps of this Dockerfile.
	trigger := make([]bool, len(steps))
	stepNo := 0
	for i := 0; i < len(steps); i++ {
		in := steps[i]
		if !trigger[i] {
			stepNo++
			fmt.Fprintf(out, "Step %d/%d : %s\n", stepNo, total, in.Original())
		}
		if cur == nil && in.Cmd != "FROM" && in.Cmd != "ARG" {
			return "", fmt.Errorf("Dockerfile line %d: %s before FROM: the first instruction must be FROM", in.Line, in.Cmd)
		}
		vars := map[string]string{}
		if cur != nil {
			for _, kv := range cur.cfg.Env {
				k, v, _ := strings.Cut(kv, "=")
				vars[k] = v
			}
			maps.Copy(vars, cur.args)
		}
		switch in.Cmd {
		case "ARG":
			for _, a := range in.Args {
				k, v, hasDefault := strings.Cut(a, "=")
				if bv, ok := buildArgs[k]; ok {
					v, hasDefault = bv, true
				}
				if cur == nil {
					globalArgs[k] = expand(v, globalArgs)
				} else {
					if gv, ok := globalArgs[k]; ok && !hasDefault {
						v = gv
					}
					cur.args[k] = expand(v, vars)
				}
			}
			if cur == nil {
				continue
			}
			fmt.Fprintf(out, " ---> %s\n", shortID(cur.imageID))
			continue
		case "FROM":
			s, err := b.from(ctx, in, globalArgs, stages, opts, out)
			if err != nil {
				return "", err
			}
			stages = append(stages, s)
			cur = s
			if len(cur.cfg.OnBuild) > 0 {
				triggers, err := onBuildTriggers(cur.cfg.OnBuild)
				if err != nil {
					return "", err
				}
				fmt.Fprintf(out, "# Executing %d build trigger%s\n", len(triggers), plural(len(triggers)))
				// Triggers run once: the image built here has none.
				cur.cfg.OnBuild = nil
				steps = slices.Insert(steps, i+1, triggers...)
				trigger = slices.Insert(trigger, i+1, slices.Repeat([]bool{true}, len(triggers))...)
			}
			fmt.Fprintf(out, " ---> %s\n", shortID(cur.imageID))
			continue
		}
		// The build cache: the step's key is its parent, the instruction,
		// the variables it sees and, for COPY and ADD, what it copies.
		extra := ""
		var downloads map[string]string
		if in.Cmd == "ADD" {
			// As Docker does, a URL is fetched at every build and its
			// content decides whether the step is cached.
			if downloads, err = fetchURLs(ctx, in, vars, out); err != nil {
				return "", err
			}
			defer removeDownloads(downloads)
		}
		if in.Cmd == "COPY" || in.Cmd == "ADD" {
			if extra, err = b.sourcesKey(in, stages, opts, vars, downloads); err != nil {
				return "", err
			}
		}
		key := stepKey(cur, in, vars, extra)
		if !opts.NoCache {
			if img, ok := b.Images.CacheLookup(key); ok {
				cfg, err := b.config(img.ID)
				if err == nil {
					cur.imageID, cur.cfg = img.ID, cfg
					fmt.Fprintf(out, " ---> Using cache\n ---> %s\n", shortID(img.ID))
					continue
				}
			}
		}
		var layer func(ctx context.Context, id string) error
		created := "/bin/sh -c #(nop) " + in.Original()
		switch in.Cmd {
		case "RUN":
			argv := in.Args
			if !in.JSON {
				// The shell expands the variables: ARGs and ENVs are its
				// environment, as in Docker ('$HOME' stays as written).
				shell := shellOf(cur.cfg)
				argv = append(slices.Clone(shell), in.Raw)
				created = strings.Join(shell, " ") + " " + in.Raw
			} else {
				created = "|" + strconv.Itoa(len(cur.args)) + " " + strings.Join(argv, " ")
			}
			id, err := b.run(ctx, cur, argv, vars, out, created, key)
			if err != nil {
				return "", err
			}
			cur.imageID = id
			fmt.Fprintf(out, " ---> %s\n", shortID(id))
			continue
		case "COPY", "ADD":
			layer = func(ctx context.Context, root string) error {
				return b.copy(ctx, in, cur, stages, opts, root, vars, downloads)
			}
		case "ENV":
			cur.cfg.Env = container.MergeEnv(cur.cfg.Env, envPairs(in, vars))
		case "LABEL":
			kvs := envPairs(in, vars)
			if cur.cfg.Labels == nil {
				cur.cfg.Labels = map[string]string{}
			}
			for _, kv := range kvs {
				k, v, _ := strings.Cut(kv, "=")
				cur.cfg.Labels[k] = v
			}
		case "WORKDIR":
			dir := expand(in.Raw, vars)
			if !path.IsAbs(dir) {
				dir = path.Join("/", cur.cfg.WorkingDir, dir)
			}
			cur.cfg.WorkingDir = dir
		case "USER":
			cur.cfg.User = expand(in.Raw, vars)
		case "CMD":
			cur.cfg.Cmd = commandArgs(in, cur.cfg)
		case "ENTRYPOINT":
			cur.cfg.Entrypoint = commandArgs(in, cur.cfg)
		case "EXPOSE":
			for _, p := range in.Args {
				p = expand(p, vars)
				if !strings.Contains(p, "/") {
					p += "/tcp"
				}
				if cur.cfg.ExposedPorts == nil {
					cur.cfg.ExposedPorts = map[string]struct{}{}
				}
				cur.cfg.ExposedPorts[p] = struct{}{}
			}
		case "VOLUME":
			for _, p := range in.Args {
				if cur.cfg.Volumes == nil {
					cur.cfg.Volumes = map[string]struct{}{}
				}
				cur.cfg.Volumes[expand(p, vars)] = struct{}{}
			}
		case "STOPSIGNAL":
			cur.cfg.StopSignal = expand(in.Raw, vars)
		case "SHELL":
			if !in.JSON {
				return "", fmt.Errorf("Dockerfile line %d: SHELL requires the exec (JSON) form", in.Line)
			}
			cur.cfg.Shell = in.Args
		case "MAINTAINER":
		case "ONBUILD":
			switch f := strings.Fields(in.Raw); {
			case len(f) == 0:
				return "", fmt.Errorf("Dockerfile line %d: ONBUILD needs an instruction", in.Line)
			case strings.EqualFold(f[0], "ONBUILD") || strings.EqualFold(f[0], "FROM") || strings.EqualFold(f[0], "MAINTAINER"):
				return "", fmt.Errorf("Dockerfile line %d: %s is not allowed as an ONBUILD trigger", in.Line, strings.ToUpper(f[0]))
			}
			cur.cfg.OnBuild = append(cur.cfg.OnBuild, in.Raw)
		case "HEALTHCHECK":
			hc, err := healthcheck(in)
			if err != nil {
				return "", err
			}
			cur.cfg.Healthcheck = hc
		}
		id, err := b.step(ctx, cur, created, layer, key)
		if err != nil {
			return "", err
		}
		cur.imageID = id
		fmt.Fprintf(out, " ---> %s\n", shortID(id))
	}
	if cur == nil {
		return "", errors.New("the Dockerfile has no FROM")
	}
	if len(opts.Labels) > 0 || cur.imageID == "" {
		if cur.cfg.Labels == nil {
			cur.cfg.Labels = map[string]string{}
		}
		maps.Copy(cur.cfg.Labels, opts.Labels)
		id, err := b.step(ctx, cur, "/bin/sh -c #(nop) LABEL", nil, "")
		if err != nil {
			return "", err
		}
		cur.imageID = id
	}
	for _, t := range opts.Tags {
		if err := b.Images.Tag(cur.imageID, t); err != nil {
			return "", err
		}
	}
	fmt.Fprintf(out, "Successfully built %s\n", shortID(cur.imageID))
	for _, t := range opts.Tags {
		fmt.Fprintf(out, "Successfully tagged %s\n", familiarTag(t))
	}
	return cur.imageID, nil
}

func familiarTag(t string) string {
	if i := strings.LastIndex(t, ":"); i > strings.LastIndex(t, "/") {
		return t
	}
	return t + ":latest"
}

func shortID(id string) string {
	h := strings.TrimPrefix(id, "sha256:")
	if len(h) > 12 {
		return h[:12]
	}
	if h == "" {
		return "scratch"
	}
	return h
}

// from starts a stage: FROM image|stage|scratch [AS name].
func (b *Builder) from(ctx context.Context, in Instruction, globalArgs map[string]string, stages []*stage, opts Options, out io.Writer) (*stage, error) {
	if len(in.Args) != 1 && !(len(in.Args) == 3 && strings.EqualFold(in.Args[1], "AS")) {
		return nil, fmt.Errorf("Dockerfile line %d: FROM needs an image and optionally AS name", in.Line)
	}
	ref := expand(in.Args[0], globalArgs)
	s := &stage{args: map[string]string{}}
	if len(in.Args) == 3 {
		s.name = in.Args[2]
	}
	if ref == "scratch" {
		s.cfg = v1.Config{Env: []string{container.DefaultPath}}
		return s, nil
	}
	for _, prev := range stages {
		if prev.name == ref {
			s.imageID, s.cfg = prev.imageID, cloneConfig(prev.cfg)
			return s, nil
		}
	}
	var img *image.Image
	var err error
	if !opts.Pull {
		img, err = b.Images.Get(ref)
	}
	if opts.Pull || errors.Is(err, image.ErrNotFound) {
		po := opts.pullOptions(ref)
		po.Progress = func(p api.PullProgress) {
			if p.ID == "" || p.Status == "Pull complete" {
				if p.ID != "" {
					fmt.Fprintf(out, "%s: %s\n", p.ID, p.Status)
				} else {
					fmt.Fprintln(out, p.Status)
				}
			}
		}
		img, err = b.Engine.Pull(ctx, ref, in.Flags["platform"], po)
	}
	if err != nil {
		return nil, err
	}
	s.imageID = img.ID
	cfg, err := b.config(img.ID)
	if err != nil {
		return nil, err
	}
	s.cfg = cfg
	return s, nil
}

// config reads an image's configuration (the runtime part).
func (b *Builder) config(id string) (v1.Config, error) {
	cf, err := b.Images.ConfigFile(id)
	if err != nil {
		return v1.Config{}, err
	}
	return cf.Config, nil
}

func cloneConfig(c v1.Config) v1.Config {
	c.Env = slices.Clone(c.Env)
	c.Cmd = slices.Clone(c.Cmd)
	c.Entrypoint = slices.Clone(c.Entrypoint)
	c.Labels = maps.Clone(c.Labels)
	c.ExposedPorts = maps.Clone(c.ExposedPorts)
	c.Volumes = maps.Clone(c.Volumes)
	return c
}

// step commits one step: a config change alone (layer nil), or what layer
// writes into a container of the current image.
func (b *Builder) step(ctx context.Context, cur *stage, createdBy string, layer func(ctx context.Context, root string) error, key string) (string, error) {
	cfg := cloneConfig(cur.cfg)
	if layer == nil {
		img, err := b.Images.Commit(image.CommitOptions{Parent: cur.imageID, Config: func(c *v1.Config) { *c = cfg }, CreatedBy: createdBy, CacheKey: key})
		if err != nil {
			return "", err
		}
		return img.ID, nil
	}
	if cur.imageID == "" {
		// FROM scratch: the first layer is a tar of what was copied.
		dir, err := os.MkdirTemp("", "vmbox-build-")
		if err != nil {
			return "", err
		}
		defer os.RemoveAll(dir)
		if err := layer(ctx, dir); err != nil {
			return "", err
		}
		pr, pw := io.Pipe()
		go func() {
			tw := tar.NewWriter(pw)
			err := container.WriteTree(tw, dir, "")
			if err == nil {
				err = tw.Close()
			}
			pw.CloseWithError(err)
		}()
		img, err := b.Images.Commit(image.CommitOptions{Layer: pr, Config: func(c *v1.Config) { *c = cfg }, CreatedBy: createdBy, CacheKey: key})
		pr.Close()
		if err != nil {
			return "", err
		}
		return img.ID, nil
	}
	c, err := b.Engine.Create(ctx, api.ContainerConfig{Image: cur.imageID, Cmd: []string{"true"}, Pull: "never", NetworkMode: api.NetworkNone}, engine.PullOptions{})
	if err != nil {
		return "", err
	}
	defer b.Engine.Remove(context.WithoutCancel(ctx), c.ID, true)
	root, release, err := b.Engine.Filesystem(c.ID)
	if err != nil {
		return "", err
	}
	err = layer(ctx, root)
	release()
	if err != nil {
		return "", err
	}
	img, err := b.Engine.Commit(c.ID, engine.CommitOptions{Config: &cfg, CreatedBy: createdBy, CacheKey: key})
	if err != nil {
		return "", err
	}
	return img.ID, nil
}

// run runs a RUN step in a container of the current image and commits
// what it changed.
func (b *Builder) run(ctx context.Context, cur *stage, argv []string, vars map[string]string, out io.Writer, createdBy, key string) (string, error) {
	if cur.imageID == "" {
		return "", errors.New("RUN needs a base image with a shell: FROM scratch has none")
	}
	env := slices.Clone(cur.cfg.Env)
	for _, k := range slices.Sorted(maps.Keys(cur.args)) {
		env = container.MergeEnv(env, []string{k + "=" + cur.args[k]})
	}
	cfg := api.ContainerConfig{
		Image: cur.imageID, Cmd: argv, EntrypointSet: true, Env: env, WorkingDir: cur.cfg.WorkingDir, User: cur.cfg.User, Pull: "never",
	}
	if !slices.Equal(argv[:min(2, len(argv))], []string{"/bin/sh", "-c"}) || len(cur.cfg.Shell) == 0 {
		// the exec form, or the default shell
	} else {
		cfg.Cmd = append(slices.Clone(cur.cfg.Shell), argv[2:]...)
	}
	c, err := b.Engine.Create(ctx, cfg, engine.PullOptions{})
	if err != nil {
		return "", err
	}
	defer b.Engine.Remove(context.WithoutCancel(ctx), c.ID, true)
	fmt.Fprintf(out, " ---> Running in %s\n", c.ID[:12])
	serve, err := b.Engine.AttachNow(c.ID, engine.Streams{Stdout: out, Stderr: out})
	if err != nil {
		return "", err
	}
	done := make(chan error, 1)
	go func() { done <- serve(ctx) }()
	if err := b.Engine.Start(ctx, c.ID); err != nil {
		return "", fmt.Errorf("The command '%s' could not run: %w", strings.Join(argv, " "), err)
	}
	<-done
	w, err := b.Engine.Wait(ctx, c.ID, "")
	if err != nil {
		return "", err
	}
	if w.StatusCode != 0 {
		return "", &StepError{Cmd: strings.Join(argv, " "), Code: w.StatusCode}
	}
	fmt.Fprintf(out, "Removing intermediate container %s\n", c.ID[:12])
	conf := cloneConfig(cur.cfg)
	img, err := b.Engine.Commit(c.ID, engine.CommitOptions{Config: &conf, CreatedBy: createdBy, CacheKey: key})
	if err != nil {
		return "", err
	}
	return img.ID, nil
}

// StepError is a RUN step whose command exited non-zero.
type StepError struct {
	Cmd  string
	Code int
}

func (e *StepError) Error() string {
	return fmt.Sprintf("The command '%s' returned a non-zero code: %d", e.Cmd, e.Code)
}

// copy serves COPY and ADD: sources from the context (or --from a stage
// or image) into the container root.
func (b *Builder) copy(ctx context.Context, in Instruction, cur *stage, stages []*stage, opts Options, root string, vars map[string]string, downloads map[string]string) error {
	args := in.Args
	if len(args) < 2 {
		return fmt.Errorf("Dockerfile line %d: %s needs at least a source and a destination", in.Line, in.Cmd)
	}
	for i := range args {
		args[i] = expand(args[i], vars)
	}
	srcs, dst := args[:len(args)-1], args[len(args)-1]
	srcRoot := opts.Context
	if from := in.Flags["from"]; from != "" {
		if in.Cmd == "ADD" {
			return fmt.Errorf("Dockerfile line %d: ADD has no --from", in.Line)
		}
		var fromImage string
		for i, s := range stages {
			if s.name == from || strconv.Itoa(i) == from {
				fromImage = s.imageID
			}
		}
		if fromImage == "" {
			img, err := b.Images.Get(from)
			if errors.Is(err, image.ErrNotFound) {
				img, err = b.Engine.Pull(ctx, from, "", opts.pullOptions(from))
			}
			if err != nil {
				return err
			}
			fromImage = img.ID
		}
		c, err := b.Engine.Create(ctx, api.ContainerConfig{Image: fromImage, Cmd: []string{"true"}, Pull: "never", NetworkMode: api.NetworkNone}, engine.PullOptions{})
		if err != nil {
			return err
		}
		defer b.Engine.Remove(context.WithoutCancel(ctx), c.ID, true)
		r, release, err := b.Engine.Filesystem(c.ID)
		if err != nil {
			return err
		}
		defer release()
		srcRoot = r
	}
	uid, gid := -1, -1
	if ch := in.Flags["chown"]; ch != "" {
		var err error
		if uid, gid, err = container.ChownIDs(root, ch); err != nil {
			return fmt.Errorf("Dockerfile line %d: --chown=%s: %w", in.Line, ch, err)
		}
	}
	var mode os.FileMode
	if m := in.Flags["chmod"]; m != "" {
		n, err := strconv.ParseUint(m, 8, 32)
		if err != nil {
			return fmt.Errorf("Dockerfile line %d: --chmod %q is not an octal mode", in.Line, m)
		}
		mode = os.FileMode(n)
	}
	if !path.IsAbs(dst) {
		dst = path.Join("/", cur.cfg.WorkingDir, dst)
	}
	// The destination is a directory when written as one ("dir/", ".",
	// "dir/.") and, as in Docker, when it already is one.
	rawDst := args[len(args)-1]
	dirDest := strings.HasSuffix(rawDst, "/") || rawDst == "." || strings.HasSuffix(rawDst, "/.") || len(srcs) > 1
	if !dirDest {
		if p, err := securejoin.SecureJoin(root, dst); err == nil {
			if fi, err := os.Stat(p); err == nil && fi.IsDir() {
				dirDest = true
			}
		}
	}
	var matches []string
	var local []string
	for _, s := range srcs {
		if f, ok := downloads[s]; ok {
			target := dst
			if dirDest {
				target = path.Join(dst, path.Base(f))
			}
			// A URL's file is never unpacked, and is mode 600, as in Docker.
			if err := copyInto(f, root, target, false, uid, gid, 0o600); err != nil {
				return fmt.Errorf("ADD %s: %w", s, err)
			}
			continue
		}
		local = append(local, s)
	}
	srcs = local
	for _, s := range srcs {
		ms, err := filepath.Glob(filepath.Join(srcRoot, filepath.Clean("/"+s)))
		if err != nil || len(ms) == 0 {
			return fmt.Errorf("COPY failed: file not found in build context or excluded by .dockerignore: stat %s: file does not exist", s)
		}
		matches = append(matches, ms...)
	}
	if len(matches) > 1 {
		dirDest = true
	}
	for _, m := range matches {
		rel, _ := filepath.Rel(srcRoot, m)
		src, err := securejoin.SecureJoin(srcRoot, rel)
		if err != nil {
			return err
		}
		// A source that is a symlink is followed inside the context only,
		// as in Docker: one that leads out of it finds nothing.
		fi, err := os.Lstat(src)
		if err != nil {
			return fmt.Errorf("COPY failed: file not found in build context or excluded by .dockerignore: %s: its target is not in the context", rel)
		}
		target := dst
		if fi.IsDir() {
			// A directory's contents go into the destination.
		} else if dirDest {
			target = path.Join(dst, filepath.Base(src))
		}
		if in.Cmd == "ADD" && fi.Mode().IsRegular() && isArchive(src) {
			if err := extractArchive(src, root, dst, uid, gid); err != nil {
				return err
			}
			continue
		}
		if err := copyInto(src, root, target, fi.IsDir(), uid, gid, mode); err != nil {
			return fmt.Errorf("COPY %s: %w", rel, err)
		}
	}
	return nil
}

// copyInto copies src (a file, symlink or directory's contents) to target
// inside root, creating the parents; symlinks are copied as they are.
func copyInto(src, root, target string, dirContents bool, uid, gid int, mode os.FileMode) error {
	place := func(rel string) (string, error) { return securejoin.SecureJoin(root, rel) }
	mkParents := func(p string) error {
		parent, err := place(path.Dir(p))
		if err != nil {
			return err
		}
		return os.MkdirAll(parent, 0o755)
	}
	write := func(from string, fi fs.FileInfo, to string) error {
		if err := mkParents(to); err != nil {
			return err
		}
		dest, err := place(to)
		if err != nil {
			return err
		}
		switch {
		case fi.IsDir():
			if err := os.MkdirAll(dest, fi.Mode().Perm()); err != nil {
				return err
			}
		case fi.Mode()&os.ModeSymlink != 0:
			link, err := os.Readlink(from)
			if err != nil {
				return err
			}
			os.Remove(dest)
			if err := os.Symlink(link, dest); err != nil {
				return err
			}
		case fi.Mode().IsRegular():
			os.Remove(dest)
			if err := copyRegular(from, dest, fi.Mode().Perm()); err != nil {
				return err
			}
		default:
			return nil
		}
		ou, og := 0, 0
		if uid >= 0 {
			ou, og = uid, gid
		}
		if err := os.Lchown(dest, ou, og); err != nil {
			return err
		}
		if fi.Mode()&os.ModeSymlink == 0 {
			m := fi.Mode().Perm()
			if mode != 0 {
				m = mode
			}
			return os.Chmod(dest, m)
		}
		return nil
	}
	if !dirContents {
		fi, err := os.Lstat(src)
		if err != nil {
			return err
		}
		return write(src, fi, target)
	}
	return filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		if rel == "." {
			if err := mkParents(path.Join(target, "x")); err != nil {
				return err
			}
			return nil
		}
		return write(p, fi, path.Join(target, filepath.ToSlash(rel)))
	})
}

func copyRegular(src, dst string, perm os.FileMode) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, perm)
	if err != nil {
		return err
	}
	_, err = io.Copy(out, in)
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	return err
}

// tarReader reads a tar, plain or gzip (told by its magic number).
func tarReader(r io.Reader) (*tar.Reader, error) {
	br := bufio.NewReader(r)
	if magic, _ := br.Peek(2); len(magic) == 2 && magic[0] == 0x1f && magic[1] == 0x8b {
		zr, err := gzip.NewReader(br)
		if err != nil {
			return nil, err
		}
		return tar.NewReader(zr), nil
	}
	return tar.NewReader(br), nil
}

// extractAll unpacks every entry of tr into dst inside root; an entry
// that names a parent (..) is refused, not just kept inside.
func extractAll(tr *tar.Reader, root, dst string, owner container.Owner) error {
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		if strings.Contains("/"+hdr.Name+"/", "/../") {
			return fmt.Errorf("%s: path outside the archive's root", hdr.Name)
		}
		if err := container.ExtractEntry(root, dst, hdr, tr, owner); err != nil {
			return fmt.Errorf("%s: %w", hdr.Name, err)
		}
	}
}

// entryOwner keeps an archive entry's owners.
func entryOwner(hdr *tar.Header) (int, int) { return hdr.Uid, hdr.Gid }

// UnpackContext unpacks a build context (a tar, plain or gzip) into dir,
// every entry resolved inside it, owners kept.
func UnpackContext(r io.Reader, dir string) error {
	tr, err := tarReader(r)
	if err != nil {
		return err
	}
	return extractAll(tr, dir, "/", entryOwner)
}

// isArchive tells a local tar (plain or gzip) that ADD unpacks.
func isArchive(p string) bool {
	f, err := os.Open(p)
	if err != nil {
		return false
	}
	defer f.Close()
	tr, err := tarReader(f)
	if err != nil {
		return false
	}
	_, err = tr.Next()
	return err == nil
}

// extractArchive unpacks a local tar into dst inside root (ADD), owned
// by uid:gid when given (>= 0), else by the archive's owners.
func extractArchive(p, root, dst string, uid, gid int) error {
	f, err := os.Open(p)
	if err != nil {
		return err
	}
	defer f.Close()
	tr, err := tarReader(f)
	if err != nil {
		return err
	}
	owner := container.Owner(entryOwner)
	if uid >= 0 {
		owner = func(*tar.Header) (int, int) { return uid, gid }
	}
	return extractAll(tr, root, dst, owner)
}

// envPairs are ENV's or LABEL's KEY=VALUE pairs (Parse made them so,
// the old KEY VALUE form too), expanded.
func envPairs(in Instruction, vars map[string]string) []string {
	kvs := make([]string, len(in.Args))
	for i, kv := range in.Args {
		k, v, _ := strings.Cut(kv, "=")
		kvs[i] = k + "=" + expand(v, vars)
	}
	return kvs
}

// commandArgs is CMD's or ENTRYPOINT's argv: the exec form as it is, the
// shell form run by /bin/sh -c.
func commandArgs(in Instruction, cfg v1.Config) []string {
	if in.JSON {
		return in.Args
	}
	return append(slices.Clone(shellOf(cfg)), in.Raw)
}

// shellOf is the shell that runs shell-form commands: SHELL's, or
// /bin/sh -c.
func shellOf(cfg v1.Config) []string {
	if len(cfg.Shell) > 0 {
		return cfg.Shell
	}
	return []string{"/bin/sh", "-c"}
}

// onBuildTriggers parses a FROM image's ONBUILD instructions.
func onBuildTriggers(onBuild []string) ([]Instruction, error) {
	var out []Instruction
	for _, t := range onBuild {
		ins, err := Parse(t)
		if err != nil {
			return nil, fmt.Errorf("ONBUILD trigger %q: %w", t, err)
		}
		for _, in := range ins {
			switch in.Cmd {
			case "ONBUILD", "FROM", "MAINTAINER":
				return nil, fmt.Errorf("ONBUILD trigger %q: %s is not allowed as a trigger", t, in.Cmd)
			}
		}
		out = append(out, ins...)
	}
	return out, nil
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}

// healthcheck reads HEALTHCHECK [--interval= ...] CMD ... | NONE.
func healthcheck(in Instruction) (*v1.HealthConfig, error) {
	if len(in.Args) == 1 && strings.EqualFold(in.Args[0], "NONE") {
		return &v1.HealthConfig{Test: []string{"NONE"}}, nil
	}
	if len(in.Args) < 2 || !strings.EqualFold(in.Args[0], "CMD") {
		return nil, fmt.Errorf("Dockerfile line %d: HEALTHCHECK needs CMD or NONE", in.Line)
	}
	rest := strings.TrimSpace(in.Raw[3:])
	hc := &v1.HealthConfig{Test: []string{"CMD-SHELL", rest}}
	if strings.HasPrefix(rest, "[") {
		sub := Instruction{Raw: rest}
		if p, err := Parse("CMD " + rest); err == nil && p[0].JSON {
			sub = p[0]
			hc.Test = append([]string{"CMD"}, sub.Args...)
		}
	}
	return hc, nil
}

// stepKey is a step's build cache key: its parent image, the instruction
// with its flags, and the variables it may expand (sorted), plus extra.
func stepKey(cur *stage, in Instruction, vars map[string]string, extra string) string {
	h := sha256.New()
	fmt.Fprintf(h, "%s\x00%s\x00", cur.imageID, in.Original())
	for _, k := range slices.Sorted(maps.Keys(vars)) {
		fmt.Fprintf(h, "%s=%s\x00", k, vars[k])
	}
	h.Write([]byte(extra))
	return "sha256:" + hex.EncodeToString(h.Sum(nil))
}

// sourcesKey hashes what a COPY or ADD copies: the names, modes and
// contents (symlinks' targets) of its sources in the context, not their
// times; a --from source is its stage's or image's ID.
func (b *Builder) sourcesKey(in Instruction, stages []*stage, opts Options, vars map[string]string, downloads map[string]string) (string, error) {
	if from := in.Flags["from"]; from != "" {
		for i, s := range stages {
			if s.name == from || strconv.Itoa(i) == from {
				return "from:" + s.imageID, nil
			}
		}
		return "from-image:" + from, nil
	}
	if len(in.Args) < 2 {
		return "", nil
	}
	h := sha256.New()
	for _, src := range in.Args[:len(in.Args)-1] {
		src = expand(src, vars)
		if f, ok := downloads[src]; ok {
			fmt.Fprintf(h, "url\x00%s\x00", src)
			if err := hashFile(h, f); err != nil {
				return "", err
			}
			continue
		}
		matches, _ := filepath.Glob(filepath.Join(opts.Context, filepath.Clean("/"+src)))
		for _, m := range matches {
			err := filepath.WalkDir(m, func(p string, d fs.DirEntry, err error) error {
				if err != nil {
					return err
				}
				fi, err := d.Info()
				if err != nil {
					return err
				}
				rel, _ := filepath.Rel(opts.Context, p)
				fmt.Fprintf(h, "%s\x00%o\x00", rel, fi.Mode())
				switch {
				case fi.Mode()&os.ModeSymlink != 0:
					link, _ := os.Readlink(p)
					h.Write([]byte(link))
				case fi.Mode().IsRegular():
					if err := hashFile(h, p); err != nil {
						return err
					}
				}
				h.Write([]byte{0})
				return nil
			})
			if err != nil {
				return "", err
			}
		}
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// pullOptions are the pull options for ref, with its registry's
// credentials.
func (o Options) pullOptions(ref string) engine.PullOptions {
	po := o.PullOptions
	if r, err := name.ParseReference(ref); err == nil {
		host := r.Context().RegistryStr()
		if host == name.DefaultRegistry {
			host = "docker.io"
		}
		if a, ok := o.Auths[host]; ok {
			po.Auth = &a
		}
	}
	return po
}
