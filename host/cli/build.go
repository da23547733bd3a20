package cli

import (
	"archive/tar"
	"bufio"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/spf13/cobra"

	"github.com/vmbox/vmbox/guest/api"
	"github.com/vmbox/vmbox/host/sshclient"
)

type buildFlags struct {
	tags, buildArgs, labels []string
	file, target, iidfile   string
	pull, quiet, noCache    bool
}

func (a *app) buildCommand() *cobra.Command {
	var f buildFlags
	c := &cobra.Command{
		Use:   "build [flags] PATH",
		Short: "Build an image from a Dockerfile and a context directory",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			req, err := f.request()
			if err != nil {
				return err
			}
			ctxDir := args[0]
			fi, err := os.Stat(ctxDir)
			if err != nil || !fi.IsDir() {
				return usageError("unable to prepare context: path %q not found or not a directory", ctxDir)
			}
			dockerfile := f.file
			if dockerfile == "" {
				dockerfile = filepath.Join(ctxDir, "Dockerfile")
			}
			df, err := os.ReadFile(dockerfile)
			if err != nil {
				return usageError("unable to prepare context: %v", err)
			}
			req.Auth = fromAuths(string(df))
			ignore, err := readDockerignore(ctxDir)
			if err != nil {
				return usageError("%v", err)
			}
			if req.ContextSize, err = contextSize(ctxDir, ignore); err != nil {
				return usageError("unable to prepare context: %v", err)
			}
			// A Dockerfile in the context is named by its place there; one
			// from elsewhere is added under a name of its own, as the docker
			// CLI does.
			var extra []byte
			req.Dockerfile = ".vmbox-dockerfile"
			if rel, ok := inside(ctxDir, dockerfile); ok && !ignore.excluded(rel) {
				req.Dockerfile = rel
			} else {
				extra = df
			}
			cl, err := a.connectOrStart(cmd.Context(), false)
			if err != nil {
				return err
			}
			defer cl.Close()
			pr, pw := io.Pipe()
			go func() { pw.CloseWithError(writeContext(pw, ctxDir, ignore, req.Dockerfile, extra)) }()
			var out, errb strings.Builder
			stdout := io.Writer(&lastLine{w: a.stdout, last: &out})
			code, err := cl.Stream(cmd.Context(), api.OpBuild, req, sshclient.IO{Stdin: pr, Stdout: stdout, Stderr: &errb, Bulk: true})
			pr.Close()
			if err != nil {
				return err
			}
			if code != 0 {
				return &ExitError{Code: code, Message: firstLine(errb.String())}
			}
			id := strings.TrimSpace(out.String())
			if f.quiet {
				fmt.Fprintln(a.stdout, id)
			}
			if f.iidfile != "" {
				if err := os.WriteFile(f.iidfile, []byte(id), 0o644); err != nil {
					return fmt.Errorf("write --iidfile: %w", err)
				}
			}
			return nil
		},
	}
	fl := c.Flags()
	fl.StringArrayVarP(&f.tags, "tag", "t", nil, "name the image NAME[:TAG] (repeatable)")
	fl.StringVarP(&f.file, "file", "f", "", "the Dockerfile (default PATH/Dockerfile)")
	fl.StringArrayVar(&f.buildArgs, "build-arg", nil, "set a build argument KEY=VALUE, or KEY to take it from here (repeatable)")
	fl.StringArrayVar(&f.labels, "label", nil, "set a label KEY=VALUE on the image (repeatable)")
	fl.StringVar(&f.target, "target", "", "build up to this stage")
	fl.BoolVar(&f.pull, "pull", false, "pull the FROM images even when they are stored")
	fl.BoolVarP(&f.quiet, "quiet", "q", false, "print only the image ID")
	fl.StringVar(&f.iidfile, "iidfile", "", "write the image ID to this file")
	fl.BoolVar(&f.noCache, "no-cache", false, "run every step, whatever the build cache holds")
	return c
}

func (f *buildFlags) request() (api.BuildArgs, error) {
	req := api.BuildArgs{Tags: f.tags, Target: f.target, Pull: f.pull, Quiet: f.quiet, NoCache: f.noCache}
	for _, t := range f.tags {
		if t == "" || strings.ContainsAny(t, " \t") || strings.HasSuffix(t, ":") {
			return req, usageError("invalid tag %q", t)
		}
	}
	if len(f.buildArgs) > 0 {
		req.BuildArgs = map[string]string{}
		for _, kv := range f.buildArgs {
			k, v, ok := strings.Cut(kv, "=")
			if !ok {
				env, set := os.LookupEnv(k)
				if !set {
					continue
				}
				v = env
			}
			req.BuildArgs[k] = v
		}
	}
	var err error
	if req.Labels, err = keyValues("--label", f.labels); err != nil {
		return req, err
	}
	return req, nil
}

// lastLine passes the builder's output through and keeps its last line,
// the image ID.
type lastLine struct {
	w    io.Writer
	last *strings.Builder
	buf  []byte
}

func (l *lastLine) Write(p []byte) (int, error) {
	l.buf = append(l.buf, p...)
	for {
		i := strings.IndexByte(string(l.buf), '\n')
		if i < 0 {
			return len(p), nil
		}
		line := string(l.buf[:i+1])
		l.buf = l.buf[i+1:]
		if strings.HasPrefix(line, "sha256:") && len(strings.TrimSpace(line)) == 71 {
			l.last.Reset()
			l.last.WriteString(line)
			continue
		}
		if _, err := io.WriteString(l.w, line); err != nil {
			return 0, err
		}
	}
}

// dockerignore is a .dockerignore's patterns, in order; later ones win,
// and "!" ones take paths back.
type dockerignore []ignoreRule

type ignoreRule struct {
	re     *regexp.Regexp
	negate bool
}

func readDockerignore(dir string) (dockerignore, error) {
	f, err := os.Open(filepath.Join(dir, ".dockerignore"))
	if os.IsNotExist(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var rules dockerignore
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		p := strings.TrimSpace(sc.Text())
		if p == "" || strings.HasPrefix(p, "#") {
			continue
		}
		r := ignoreRule{}
		if strings.HasPrefix(p, "!") {
			r.negate, p = true, strings.TrimSpace(p[1:])
		}
		p = path.Clean(strings.TrimPrefix(filepath.ToSlash(p), "/"))
		re, err := regexp.Compile("^" + globRegexp(p) + "(/.*)?$")
		if err != nil {
			return nil, fmt.Errorf(".dockerignore: bad pattern %q", p)
		}
		r.re = re
		rules = append(rules, r)
	}
	return rules, sc.Err()
}

// globRegexp turns a .dockerignore pattern into a regular expression:
// ** crosses directories, * and ? do not.
func globRegexp(p string) string {
	var b strings.Builder
	for i := 0; i < len(p); i++ {
		switch c := p[i]; {
		case c == '*' && i+1 < len(p) && p[i+1] == '*':
			b.WriteString(".*")
			i++
			if i+1 < len(p) && p[i+1] == '/' {
				i++
				b.WriteString("/?")
			}
		case c == '*':
			b.WriteString("[^/]*")
		case c == '?':
			b.WriteString("[^/]")
		default:
			b.WriteString(regexp.QuoteMeta(string(c)))
		}
	}
	return b.String()
}

// excluded tells whether rel (slash-separated) is left out of the context.
func (d dockerignore) excluded(rel string) bool {
	out := false
	for _, r := range d {
		if r.re.MatchString(rel) {
			out = !r.negate
		}
	}
	return out
}

// writeContext writes the context directory as a tar, .dockerignore
// applied, symlinks as symlinks (never followed), and, when dockerfile is
// not nil, that Dockerfile under dfName.
func writeContext(w io.Writer, dir string, ignore dockerignore, dfName string, dockerfile []byte) error {
	tw := tar.NewWriter(w)
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		rel = filepath.ToSlash(rel)
		if rel == "." {
			return nil
		}
		if ignore.excluded(rel) && rel != ".dockerignore" {
			if d.IsDir() && !ignore.hasExceptionsUnder(rel) {
				return filepath.SkipDir
			}
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		link := ""
		if fi.Mode()&os.ModeSymlink != 0 {
			if link, err = os.Readlink(p); err != nil {
				return err
			}
		}
		hdr, err := tar.FileInfoHeader(fi, link)
		if err != nil {
			return nil // sockets and the like are no part of a context
		}
		hdr.Name, hdr.Uname, hdr.Gname = rel, "", ""
		if fi.IsDir() {
			hdr.Name += "/"
		}
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		if !fi.Mode().IsRegular() {
			return nil
		}
		f, err := os.Open(p)
		if err != nil {
			return err
		}
		defer f.Close()
		_, err = io.CopyN(tw, f, hdr.Size)
		return err
	})
	if err != nil {
		return err
	}
	if dockerfile != nil {
		if err := tw.WriteHeader(&tar.Header{Name: dfName, Mode: 0o644, Size: int64(len(dockerfile)), Typeflag: tar.TypeReg}); err != nil {
			return err
		}
		if _, err := tw.Write(dockerfile); err != nil {
			return err
		}
	}
	return tw.Close()
}

// hasExceptionsUnder tells whether a "!" rule may take back something
// under an excluded directory, which must then be walked.
func (d dockerignore) hasExceptionsUnder(dir string) bool {
	for _, r := range d {
		if r.negate && (strings.HasPrefix(r.re.String(), "^"+regexp.QuoteMeta(dir+"/")) || strings.Contains(r.re.String(), ".*")) {
			return true
		}
	}
	return false
}

func (a *app) builderCommand() *cobra.Command {
	c := &cobra.Command{
		Use:   "builder COMMAND",
		Short: "Manage the build cache",
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 {
				return cmd.Help()
			}
			return &ExitError{Code: 1, Message: fmt.Sprintf("unknown command %q for %q", args[0], cmd.CommandPath())}
		},
	}
	var force bool
	prune := &cobra.Command{
		Use:   "prune [flags]",
		Short: "Remove the build cache",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			var rep api.BuilderPruneReply
			if err := a.call(cmd.Context(), api.OpBuilderPrune, nil, &rep); err != nil {
				return err
			}
			if len(rep.CachesDeleted) > 0 {
				fmt.Fprintln(a.stdout, "Deleted build cache objects:")
				for _, id := range rep.CachesDeleted {
					fmt.Fprintln(a.stdout, strings.TrimPrefix(id, "sha256:"))
				}
				fmt.Fprintln(a.stdout)
			}
			fmt.Fprintf(a.stdout, "Total reclaimed space: %s\n", formatBytes(int64(rep.SpaceReclaimed)))
			return nil
		},
	}
	prune.Flags().BoolVarP(&force, "force", "f", false, "do not ask for confirmation (prune never asks)")
	prune.Flags().BoolP("all", "a", false, "every build cache entry (the same here: all are unnamed step images)")
	c.AddCommand(prune)
	return c
}

// fromAuths finds the credentials (docker login's) for the registries of
// the Dockerfile's FROM images, keyed by registry host, so that the build
// can pull private bases. Images named by variables are not resolved.
func fromAuths(dockerfile string) map[string]api.RegistryAuth {
	out := map[string]api.RegistryAuth{}
	for _, line := range strings.Split(dockerfile, "\n") {
		f := strings.Fields(line)
		if len(f) < 2 || !strings.EqualFold(f[0], "FROM") {
			continue
		}
		ref := f[1]
		for i := 1; i < len(f) && strings.HasPrefix(f[i], "--"); i++ {
			if i+1 < len(f) {
				ref = f[i+1]
			}
		}
		if strings.Contains(ref, "$") || ref == "scratch" {
			continue
		}
		if a := registryAuth(ref); a != nil {
			out[registryHost(ref)] = *a
		}
	}
	if len(out) == 0 {
		return nil
	}
	return out
}

// contextSize adds up the bytes of the files the context sends.
func contextSize(dir string, ignore dockerignore) (int64, error) {
	var n int64
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		rel = filepath.ToSlash(rel)
		if rel != "." && ignore.excluded(rel) && rel != ".dockerignore" {
			if d.IsDir() && !ignore.hasExceptionsUnder(rel) {
				return filepath.SkipDir
			}
			return nil
		}
		if d.Type().IsRegular() {
			fi, err := d.Info()
			if err != nil {
				return err
			}
			n += fi.Size()
		}
		return nil
	})
	return n, err
}

// inside tells whether path is within dir, and its slash-separated place
// there.
func inside(dir, path string) (string, bool) {
	ad, err1 := filepath.Abs(dir)
	ap, err2 := filepath.Abs(path)
	if err1 != nil || err2 != nil {
		return "", false
	}
	rel, err := filepath.Rel(ad, ap)
	if err != nil || rel == "." || strings.HasPrefix(rel, "..") {
		return "", false
	}
	return filepath.ToSlash(rel), true
}
