package engine

import (
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/vmbox/vmbox/guest/api"
)

// containerFilter is api.Filters checked and compiled.
type containerFilter struct {
	f      api.Filters
	names  []*regexp.Regexp
	exited []int
}

func newContainerFilter(f api.Filters) (*containerFilter, error) {
	if err := f.Validate(api.ContainerFilterKeys()...); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	cf := &containerFilter{f: f}
	for _, n := range f["name"] {
		re, err := regexp.Compile(n)
		if err != nil {
			return nil, fmt.Errorf("%w: invalid filter 'name=%s': %v", ErrInvalid, n, err)
		}
		cf.names = append(cf.names, re)
	}
	for _, v := range f["exited"] {
		code, err := strconv.Atoi(v)
		if err != nil {
			return nil, fmt.Errorf("%w: invalid filter 'exited=%s': the exit code must be a number", ErrInvalid, v)
		}
		cf.exited = append(cf.exited, code)
	}
	// The values Docker's status filter accepts.
	statuses := []string{"created", "restarting", "running", "removing", "paused", "exited", "dead"}
	for _, v := range f["status"] {
		if !slices.Contains(statuses, v) {
			return nil, fmt.Errorf("%w: invalid filter 'status=%s'", ErrInvalid, v)
		}
	}
	return cf, nil
}

// listsStopped tells whether the filter asks for stopped containers even
// without "all", as Docker's status and exited filters do.
func (cf *containerFilter) listsStopped() bool {
	return len(cf.f["status"]) > 0 || len(cf.exited) > 0
}

// matches tells whether a container with rec and networks passes.
func (cf *containerFilter) matches(rec *record, networks []string) bool {
	anyOf := func(key string, ok func(string) bool) bool {
		vs := cf.f[key]
		return len(vs) == 0 || slices.ContainsFunc(vs, ok)
	}
	if !anyOf("id", func(v string) bool { return v != "" && strings.HasPrefix(rec.ID, v) }) {
		return false
	}
	if len(cf.names) > 0 && !slices.ContainsFunc(cf.names, func(re *regexp.Regexp) bool {
		return re.MatchString(rec.Name) || re.MatchString("/"+rec.Name)
	}) {
		return false
	}
	if !api.MatchLabels(rec.Config.Labels, cf.f["label"]) {
		return false
	}
	if !anyOf("status", func(v string) bool { return v == rec.State.Status }) {
		return false
	}
	if len(cf.exited) > 0 && (rec.State.Status != statusExited || !slices.Contains(cf.exited, rec.State.ExitCode)) {
		return false
	}
	if !anyOf("ancestor", func(v string) bool { return isAncestor(rec, v) }) {
		return false
	}
	return anyOf("network", func(v string) bool {
		return slices.Contains(networks, v) || slices.ContainsFunc(rec.Networks, func(a netAttachment) bool { return a.Network == v })
	})
}

// isAncestor tells whether ref names the container's image: as it was
// given (":latest" implied), or by ID or a prefix of it.
func isAncestor(rec *record, ref string) bool {
	if ref == "" {
		return false
	}
	withTag := func(s string) string {
		if i := strings.LastIndex(s, "/"); !strings.Contains(s[i+1:], ":") && !strings.Contains(s, "@") {
			return s + ":latest"
		}
		return s
	}
	if withTag(ref) == withTag(rec.Config.Image) {
		return true
	}
	id := strings.TrimPrefix(rec.ImageID, "sha256:")
	short := strings.TrimPrefix(ref, "sha256:")
	return len(short) >= 12 && strings.HasPrefix(id, short)
}
