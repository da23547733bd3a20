package nsinit

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	securejoin "github.com/cyphar/filepath-securejoin"
)

// User is a resolved container user.
type User struct {
	UID, GID int
	Groups   []int // supplementary groups
	Home     string
}

type passwdEntry struct {
	name     string
	uid, gid int
	home     string
}

type groupEntry struct {
	name    string
	gid     int
	members []string
}

// records yields the colon-separated fields of each line of an
// /etc/passwd-style file that has at least min fields, skipping blank lines
// and comments.
func records(r io.Reader, min int, each func(f []string)) {
	s := bufio.NewScanner(r)
	for s.Scan() {
		line := strings.TrimSpace(s.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		if f := strings.Split(line, ":"); len(f) >= min {
			each(f)
		}
	}
}

func parsePasswd(r io.Reader) []passwdEntry {
	var out []passwdEntry
	records(r, 4, func(f []string) {
		uid, err1 := strconv.Atoi(f[2])
		gid, err2 := strconv.Atoi(f[3])
		if err1 != nil || err2 != nil {
			return
		}
		e := passwdEntry{name: f[0], uid: uid, gid: gid}
		if len(f) > 5 {
			e.home = f[5]
		}
		out = append(out, e)
	})
	return out
}

func parseGroup(r io.Reader) []groupEntry {
	var out []groupEntry
	records(r, 3, func(f []string) {
		gid, err := strconv.Atoi(f[2])
		if err != nil {
			return
		}
		e := groupEntry{name: f[0], gid: gid}
		if len(f) > 3 && f[3] != "" {
			e.members = strings.Split(f[3], ",")
		}
		out = append(out, e)
	})
	return out
}

// resolveUser resolves spec ("", "name", "uid", "name:group", "uid:gid")
// against the container's passwd and group databases, the way runc does:
// names must exist, numeric ids need not; supplementary groups are the
// groups listing the user by name; HOME is the passwd entry's home, or "/".
func resolveUser(spec string, passwd []passwdEntry, groups []groupEntry) (User, error) {
	u := User{Home: "/"}
	userPart, groupPart, hasGroup := strings.Cut(spec, ":")
	if userPart == "" {
		userPart = "0"
	}
	var found *passwdEntry
	if uid, err := strconv.Atoi(userPart); err == nil {
		if uid < 0 {
			return u, fmt.Errorf("invalid user %q", spec)
		}
		u.UID = uid
		for i := range passwd {
			if passwd[i].uid == uid {
				found = &passwd[i]
				break
			}
		}
	} else {
		for i := range passwd {
			if passwd[i].name == userPart {
				found = &passwd[i]
				break
			}
		}
		if found == nil {
			return u, fmt.Errorf("unable to find user %s: no matching entries in passwd file", userPart)
		}
		u.UID = found.uid
	}
	if found != nil {
		u.GID = found.gid
		if found.home != "" {
			u.Home = found.home
		}
	}
	if hasGroup {
		if gid, err := strconv.Atoi(groupPart); err == nil {
			if gid < 0 {
				return u, fmt.Errorf("invalid group %q", spec)
			}
			u.GID = gid
		} else {
			ok := false
			for _, g := range groups {
				if g.name == groupPart {
					u.GID, ok = g.gid, true
					break
				}
			}
			if !ok {
				return u, fmt.Errorf("unable to find group %s: no matching entries in group file", groupPart)
			}
		}
	}
	if found != nil && !hasGroup {
		seen := map[int]bool{}
		for _, g := range groups {
			for _, m := range g.members {
				if m == found.name && !seen[g.gid] {
					seen[g.gid] = true
					u.Groups = append(u.Groups, g.gid)
				}
			}
		}
	}
	return u, nil
}

// LookupUser reads /etc/passwd and /etc/group as seen by the calling thread
// (whose root is the container's) and resolves spec.
func LookupUser(spec string) (User, error) {
	return LookupUserIn("/", spec)
}

// LookupUserIn resolves spec with the /etc/passwd and /etc/group of the
// file tree at root, whose symlinks never lead out of it.
func LookupUserIn(root, spec string) (User, error) {
	var passwd []passwdEntry
	var groups []groupEntry
	open := func(name string) (*os.File, error) {
		p, err := securejoin.SecureJoin(root, name)
		if err != nil {
			return nil, err
		}
		return os.Open(p)
	}
	if f, err := open("/etc/passwd"); err == nil {
		passwd = parsePasswd(f)
		f.Close()
	}
	if f, err := open("/etc/group"); err == nil {
		groups = parseGroup(f)
		f.Close()
	}
	return resolveUser(spec, passwd, groups)
}
