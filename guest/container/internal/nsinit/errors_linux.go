package nsinit

import "strings"

// DefaultPath is the PATH a container gets when neither its image nor its
// user sets one (Docker's value).
const DefaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// Exit codes with the meaning Docker gives them.
const (
	ExitEngineError   = 125
	ExitNotExecutable = 126
	ExitNotFound      = 127
	ExitSignalBase    = 128
)

// StartError is a failure to start a container's or an exec's process. Code
// is ExitNotFound, ExitNotExecutable or ExitEngineError, as Docker reports
// them.
type StartError struct {
	Code int
	Msg  string
}

func (e *StartError) Error() string { return e.Msg }

// EnvHas reports whether env sets name.
func EnvHas(env []string, name string) bool {
	for _, kv := range env {
		if n, _, _ := strings.Cut(kv, "="); n == name {
			return true
		}
	}
	return false
}

// EnvGet returns the last value env gives name.
func EnvGet(env []string, name string) string {
	v := ""
	for _, kv := range env {
		if n, val, ok := strings.Cut(kv, "="); ok && n == name {
			v = val
		}
	}
	return v
}
