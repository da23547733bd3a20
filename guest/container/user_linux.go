package container

import (
	"strings"

	"github.com/vmbox/vmbox/guest/container/internal/nsinit"
)

// ChownIDs resolves a Dockerfile --chown value, USER[:GROUP] by name or
// number, with the /etc/passwd and /etc/group of the file tree at root.
// As in Docker, a user without a group gets the user's number as its
// group.
func ChownIDs(root, spec string) (uid, gid int, err error) {
	u, err := nsinit.LookupUserIn(root, spec)
	if err != nil {
		return 0, 0, err
	}
	if !strings.Contains(spec, ":") {
		return u.UID, u.UID, nil
	}
	return u.UID, u.GID, nil
}
