package image

import (
	"fmt"
	"slices"
	"strings"

	"github.com/vmbox/vmbox/guest/api"
)

// Remove removes images or their names, like docker rmi:
//
//   - A name (name:tag or name@digest) is untagged. The image itself is
//     deleted when that was its last name.
//   - An image ID untags every name and deletes the image. Without force it
//     refuses when the names span several repositories.
//   - inUse (may be nil) reports whether a container, running or not, uses
//     an image. Such an image is never deleted: without force Remove refuses
//     to take its last name or to delete it; with force it removes the names
//     and keeps the image, since its containers still need its layers.
//
// Blobs and unpacked layers no remaining image needs are deleted. Every
// name is tried; the results of those that succeeded are returned together
// with an error naming those that failed.
func (s *Store) Remove(names []string, force bool, inUse func(imageID string) bool) ([]api.RmiResult, error) {
	if inUse == nil {
		inUse = func(string) bool { return false }
	}
	s.mu.Lock()
	next := s.idx.clone()
	var (
		results []api.RmiResult
		errs    []error
		changed bool
	)
	for _, n := range names {
		res, err := removeOne(next, n, force, inUse)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		results = append(results, res...)
		changed = changed || len(res) > 0
	}
	var trash []string
	if changed {
		if err := s.commit(next); err != nil {
			s.mu.Unlock()
			return nil, err
		}
		var err error
		if trash, err = s.sweep(); err != nil {
			errs = append(errs, err)
		}
	}
	s.mu.Unlock()
	removeTrash(trash)
	return results, joinErrors(errs)
}

func removeOne(x *index, ref string, force bool, inUse func(string) bool) ([]api.RmiResult, error) {
	rec, byName, err := x.lookup(ref)
	if err != nil {
		return nil, err
	}
	id := rec.ID
	used := inUse(id)
	var res []api.RmiResult

	if byName != nil {
		if used && !force && x.refCount(rec) == 1 {
			return nil, fmt.Errorf("%w: unable to remove repository reference %q (must force) - a container is using its referenced image %s", ErrConflict, ref, shortID(id))
		}
		if byName.digest != "" {
			c := byName.canonical()
			rec.RepoDigests = slices.DeleteFunc(rec.RepoDigests, func(d string) bool { return d == c })
			res = append(res, api.RmiResult{Untagged: familiar(c)})
		} else {
			c := byName.canonical()
			delete(x.Tags, c)
			res = append(res, api.RmiResult{Untagged: familiar(c)})
			// As Docker does: once no tag of this repository names the
			// image, its digest references in the repository go too.
			if !slices.ContainsFunc(x.repoTags(id), func(t string) bool { return repoOf(t) == byName.repo }) {
				rec.RepoDigests = slices.DeleteFunc(rec.RepoDigests, func(d string) bool {
					if repoOf(d) == byName.repo {
						res = append(res, api.RmiResult{Untagged: familiar(d)})
						return true
					}
					return false
				})
			}
		}
		if x.refCount(rec) > 0 || used {
			return res, nil
		}
		delete(x.Images, id)
		return append(res, api.RmiResult{Deleted: id}), nil
	}

	if used && !force {
		return nil, fmt.Errorf("%w: unable to delete %s (must be forced) - image is being used by a container", ErrConflict, shortID(id))
	}
	tags := x.repoTags(id)
	if !force {
		repos := map[string]bool{}
		for _, t := range tags {
			repos[repoOf(t)] = true
		}
		for _, d := range rec.RepoDigests {
			repos[repoOf(d)] = true
		}
		if len(repos) > 1 {
			return nil, fmt.Errorf("%w: unable to delete %s (must be forced) - image is referenced in multiple repositories", ErrConflict, shortID(id))
		}
	}
	for _, t := range tags {
		delete(x.Tags, t)
		res = append(res, api.RmiResult{Untagged: familiar(t)})
	}
	for _, d := range rec.RepoDigests {
		res = append(res, api.RmiResult{Untagged: familiar(d)})
	}
	rec.RepoDigests = nil
	if used {
		return res, nil
	}
	delete(x.Images, id)
	return append(res, api.RmiResult{Deleted: id}), nil
}

// refCount is how many names (tags and registry digests) an image has.
func (x *index) refCount(r *record) int {
	return len(x.repoTags(r.ID)) + len(r.RepoDigests)
}

// joinedError reports several failures on one line.
type joinedError []error

func (e joinedError) Error() string {
	msgs := make([]string, len(e))
	for i, err := range e {
		msgs[i] = err.Error()
	}
	return strings.Join(msgs, "; ")
}

func (e joinedError) Unwrap() []error { return e }

func joinErrors(errs []error) error {
	switch len(errs) {
	case 0:
		return nil
	case 1:
		return errs[0]
	}
	return joinedError(errs)
}

// Tag gives the image src names (name[:tag], tag "latest" when left out;
// a name that named another image moves to this one), as docker tag does.
func (s *Store) Tag(src, dst string) error {
	pr, err := parseRef(dst)
	if err != nil {
		return fmt.Errorf("invalid reference format %q: %w", dst, err)
	}
	if pr.digest != "" {
		return fmt.Errorf("refusing to create a tag with a digest reference: %s", dst)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	next := s.idx.clone()
	rec, _, err := next.lookup(src)
	if err != nil {
		return err
	}
	if next.Tags[pr.canonical()] == rec.ID {
		return nil
	}
	next.Tags[pr.canonical()] = rec.ID
	return s.commit(next)
}
