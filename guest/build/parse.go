package build

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"
)

// Instruction is one Dockerfile instruction.
type Instruction struct {
	Line  int    // where it starts, 1-based
	Cmd   string // upper case: FROM, RUN, ...
	Flags map[string]string
	// Args are the arguments: the exec form's array elements (JSON set),
	// or the shell form's words (for FROM, COPY, ...), with Raw the text
	// after the flags as written.
	Args []string
	JSON bool
	Raw  string
}

// Original is the instruction as Docker's output shows it.
func (in Instruction) Original() string {
	var b strings.Builder
	b.WriteString(in.Cmd)
	for _, k := range slices.Sorted(maps.Keys(in.Flags)) {
		b.WriteString(" --" + k + "=" + in.Flags[k])
	}
	if in.Raw != "" {
		b.WriteString(" " + in.Raw)
	}
	return b.String()
}

// Parse reads a Dockerfile: comments, line continuations (\ at the end of
// a line), --flags of an instruction, the exec (JSON) and shell forms.
func Parse(src string) ([]Instruction, error) {
	var out []Instruction
	lines := strings.Split(strings.ReplaceAll(src, "\r\n", "\n"), "\n")
	for i := 0; i < len(lines); i++ {
		line := strings.TrimSpace(lines[i])
		start := i + 1
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		for strings.HasSuffix(line, "\\") && i+1 < len(lines) {
			i++
			next := strings.TrimSpace(lines[i])
			if strings.HasPrefix(next, "#") || next == "" {
				continue // comments and blank lines inside a continued instruction
			}
			line = strings.TrimSuffix(line, "\\") + " " + next
		}
		line = strings.TrimSuffix(line, "\\")
		cmd, rest, _ := strings.Cut(line, " ")
		in := Instruction{Line: start, Cmd: strings.ToUpper(cmd), Flags: map[string]string{}}
		rest = strings.TrimSpace(rest)
		for strings.HasPrefix(rest, "--") {
			flag, r, _ := strings.Cut(rest, " ")
			k, v, _ := strings.Cut(strings.TrimPrefix(flag, "--"), "=")
			in.Flags[k] = v
			rest = strings.TrimSpace(r)
		}
		in.Raw = rest
		if strings.HasPrefix(rest, "[") {
			var arr []string
			if err := json.Unmarshal([]byte(rest), &arr); err == nil {
				in.Args, in.JSON = arr, true
			}
		}
		if !in.JSON {
			in.Args = strings.Fields(rest)
		}
		if !known[in.Cmd] {
			return nil, fmt.Errorf("Dockerfile line %d: unknown instruction: %s", start, in.Cmd)
		}
		out = append(out, in)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("the Dockerfile is empty")
	}
	return out, nil
}

var known = map[string]bool{
	"FROM": true, "RUN": true, "CMD": true, "ENTRYPOINT": true, "ENV": true, "ARG": true, "WORKDIR": true,
	"USER": true, "COPY": true, "ADD": true, "EXPOSE": true, "LABEL": true, "VOLUME": true, "STOPSIGNAL": true,
	"HEALTHCHECK": true, "ONBUILD": true, "SHELL": true, "MAINTAINER": true,
}

// expand replaces $NAME and ${NAME} (with ${NAME:-default} and
// ${NAME:+alt}) from vars, as the builder does for ARG and ENV.
func expand(s string, vars map[string]string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == '\\' && i+1 < len(s) && s[i+1] == '$' {
			b.WriteByte('$')
			i++
			continue
		}
		if c != '$' || i+1 >= len(s) {
			b.WriteByte(c)
			continue
		}
		if s[i+1] == '{' {
			end := strings.IndexByte(s[i:], '}')
			if end < 0 {
				b.WriteByte(c)
				continue
			}
			expr := s[i+2 : i+end]
			i += end
			name, mod := expr, ""
			if j := strings.Index(expr, ":"); j >= 0 {
				name, mod = expr[:j], expr[j:]
			}
			v, ok := vars[name]
			switch {
			case strings.HasPrefix(mod, ":-"):
				if !ok || v == "" {
					v = mod[2:]
				}
			case strings.HasPrefix(mod, ":+"):
				if ok && v != "" {
					v = mod[2:]
				} else {
					v = ""
				}
			}
			b.WriteString(v)
			continue
		}
		j := i + 1
		for j < len(s) && (s[j] == '_' || s[j] >= 'a' && s[j] <= 'z' || s[j] >= 'A' && s[j] <= 'Z' || s[j] >= '0' && s[j] <= '9') {
			j++
		}
		if j == i+1 {
			b.WriteByte(c)
			continue
		}
		b.WriteString(vars[s[i+1:j]])
		i = j - 1
	}
	return b.String()
}
