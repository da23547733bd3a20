package build

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"unicode"

	"github.com/moby/buildkit/frontend/dockerfile/parser"
)

// Dockerfiles are read by BuildKit's parser, the one Docker's builders
// use, so that directives, continuations, quoting, the exec form and
// heredocs read as in Docker. Its instructions package is not: Build
// dispatches on Instruction, so it would only check and convert twice.
// Measured on the agent (go build ./cmd/vmbox-agent, linux/amd64): the
// parser adds 237,047 bytes (26,717,779 to 26,954,826), a blank import
// of instructions 68,620 more, calling its Parse 215,811 more.

// Instruction is one Dockerfile instruction.
type Instruction struct {
	Line  int    // where it starts, 1-based
	Cmd   string // upper case: FROM, RUN, ...
	Flags map[string]string
	// Args are the arguments: the exec form's array elements (JSON set);
	// for ARG, FROM, EXPOSE, COPY, ADD and VOLUME the parser's words, and
	// for ENV and LABEL KEY=VALUE pairs, unquoted (a $ to keep literal
	// as \$, which expand keeps); else the shell form's words.
	Args []string
	JSON bool
	// Raw is the text after the flags as written, on one line, but with
	// heredocs: a RUN's is the shell script it runs, an ONBUILD's its
	// trigger followed by the heredocs' lines.
	Raw string
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

// Parse reads a Dockerfile. Its errors are one line naming the line.
func Parse(src string) ([]Instruction, error) {
	src = strings.TrimPrefix(strings.ReplaceAll(src, "\r\n", "\n"), "\uFEFF")
	// The parser's only warning (v0.16.0) is about blank lines in a
	// continued instruction, which vmbox has always taken silently.
	res, err := parser.Parse(strings.NewReader(src))
	lines := strings.Split(src, "\n")
	if err != nil {
		var el *parser.ErrorLocation
		switch {
		case !errors.As(err, &el) || len(el.Locations) == 0 || len(el.Locations[0]) == 0:
			return nil, err
		case el.Error() == "file with no instructions":
			return nil, errors.New("the Dockerfile is empty")
		}
		// The parser counts from 0 for a parser directive (one of the
		// first lines, all comments), from 1 for the rest.
		line := el.Locations[0][0].Start.Line
		if !slices.ContainsFunc(lines[:min(line+1, len(lines))], func(l string) bool { return !strings.HasPrefix(strings.TrimSpace(l), "#") }) {
			line++
		}
		return nil, fmt.Errorf("Dockerfile line %d: %s", line, el.Error())
	}
	out := make([]Instruction, 0, len(res.AST.Children))
	for _, n := range res.AST.Children {
		in, err := instruction(n, lines, res.EscapeToken)
		if err != nil {
			return nil, fmt.Errorf("Dockerfile line %d: %w", n.StartLine, err)
		}
		out = append(out, in)
	}
	return out, nil
}

var known = map[string]bool{
	"FROM": true, "RUN": true, "CMD": true, "ENTRYPOINT": true, "ENV": true, "ARG": true, "WORKDIR": true,
	"USER": true, "COPY": true, "ADD": true, "EXPOSE": true, "LABEL": true, "VOLUME": true, "STOPSIGNAL": true,
	"HEALTHCHECK": true, "ONBUILD": true, "SHELL": true, "MAINTAINER": true,
}

// wordArgs are the instructions whose arguments are words, each expanded
// on its own.
var wordArgs = map[string]bool{"ARG": true, "FROM": true, "EXPOSE": true, "COPY": true, "ADD": true, "VOLUME": true}

// instruction makes one of the parser's nodes an Instruction; lines are
// the Dockerfile's, for Raw.
func instruction(n *parser.Node, lines []string, esc rune) (Instruction, error) {
	in := Instruction{Line: n.StartLine, Cmd: strings.ToUpper(n.Value), Flags: map[string]string{}}
	// The parser takes any instruction (and ONBUILD's trigger) as valid.
	if !known[in.Cmd] {
		return in, fmt.Errorf("unknown instruction: %s", in.Cmd)
	}
	if in.Cmd == "ONBUILD" && n.Next != nil && len(n.Next.Children) > 0 {
		if t := strings.ToUpper(n.Next.Children[0].Value); !known[t] {
			return in, fmt.Errorf("unknown instruction: %s", t)
		}
	}
	for _, f := range n.Flags {
		k, v, _ := strings.Cut(strings.TrimPrefix(f, "--"), "=")
		in.Flags[k] = v
	}
	// The node's EndLine is past its heredocs' lines: each body and its
	// terminator.
	end := n.EndLine
	for _, h := range n.Heredocs {
		end -= strings.Count(h.Content, "\n") + 1
	}
	in.Raw = argText(joinLines(lines[n.StartLine-1:end], esc))
	// HEALTHCHECK's json is its CMD's, after the CMD word.
	in.JSON = n.Attributes["json"] && in.Cmd != "HEALTHCHECK"
	switch {
	case in.JSON:
		in.Args = values(n.Next)
	case in.Cmd == "ENV" || in.Cmd == "LABEL":
		// key, value, separator: the old KEY VALUE form has the rest of
		// the line as the value. Keys may be quoted too.
		for k := n.Next; k != nil; k = k.Next.Next.Next {
			kv, err := unquote(k.Value+"="+k.Next.Value, esc)
			if err != nil {
				return in, err
			}
			in.Args = append(in.Args, kv)
		}
	case wordArgs[in.Cmd]:
		for _, w := range values(n.Next) {
			u, err := unquote(w, esc)
			if err != nil {
				return in, err
			}
			in.Args = append(in.Args, u)
		}
	default:
		in.Args = strings.Fields(in.Raw)
	}
	if len(in.Args) == 0 && (in.Cmd == "ENV" || in.Cmd == "LABEL" || in.Cmd == "ARG") {
		return in, fmt.Errorf("%s needs at least one argument", in.Cmd)
	}
	if len(n.Heredocs) == 0 {
		return in, nil
	}
	switch in.Cmd {
	case "RUN":
		script, err := heredocScript(in.Raw, n.Heredocs)
		in.Raw, in.Args = script, strings.Fields(script)
		return in, err
	case "ONBUILD":
		// The trigger as written, read again by the builds FROM the image.
		for _, h := range n.Heredocs {
			in.Raw += "\n" + h.Content + h.Name
		}
		return in, nil
	}
	return in, fmt.Errorf("%s from a heredoc (<<%s) is not supported: put the file in the build context", in.Cmd, n.Heredocs[0].Name)
}

// values are the node and those after it.
func values(n *parser.Node) []string {
	vs := []string{}
	for ; n != nil; n = n.Next {
		vs = append(vs, n.Value)
	}
	return vs
}

// joinLines makes an instruction's lines one, as vmbox always has (Step
// lines and cache keys show it): each trimmed, comment and blank lines
// left out, the continuation escapes dropped, joined by a space.
func joinLines(lines []string, esc rune) string {
	var parts []string
	for i, l := range lines {
		l = strings.TrimSpace(l)
		if i > 0 && (l == "" || l[0] == '#') {
			continue
		}
		// An escape escaped is no continuation (the parser's rule).
		if e := string(esc); strings.HasSuffix(l, e) && !strings.HasSuffix(l, e+e) {
			l = l[:len(l)-len(e)]
		}
		parts = append(parts, l)
	}
	return strings.Join(parts, " ")
}

// argText is an instruction line without its command word and the
// --flags before its arguments, skipped by the parser's rules (quotes,
// \ escapes, a lone -- ending them).
func argText(line string) string {
	s := strings.TrimLeftFunc(line, func(r rune) bool { return !unicode.IsSpace(r) })
	for s = strings.TrimLeftFunc(s, unicode.IsSpace); strings.HasPrefix(s, "--"); {
		var quote byte
		i := 0
		for ; i < len(s) && (quote != 0 || !unicode.IsSpace(rune(s[i]))); i++ {
			switch c := s[i]; {
			case c == '\\':
				i++
			case quote == 0 && (c == '"' || c == '\''):
				quote = c
			case c == quote:
				quote = 0
			}
		}
		word := s[:min(i, len(s))]
		s = strings.TrimLeftFunc(s[len(word):], unicode.IsSpace)
		if word == "--" {
			break
		}
	}
	return strings.TrimSpace(s)
}

// unquote removes a word's quotes and escapes as Docker does when it
// expands the word, leaving its variables for expand: a $ that must stay
// literal (single-quoted or escaped) becomes \$, which expand keeps.
// (BuildKit's shell.Lex does both at once, so it cannot leave them.)
func unquote(w string, esc rune) (string, error) {
	var b strings.Builder
	var quote rune // the open quote, or 0
	rs := []rune(w)
	for i := 0; i < len(rs); i++ {
		c, literal := rs[i], quote == '\''
		switch {
		case c == quote:
			quote = 0
			continue
		case quote == 0 && (c == '"' || c == '\''):
			quote = c
			continue
		case c == esc && quote == 0,
			// In double quotes, the escape escapes only ", $ and itself.
			c == esc && quote == '"' && i+1 < len(rs) && strings.ContainsRune(`"$`+string(esc), rs[i+1]):
			if i++; i == len(rs) {
				continue // a trailing escape is dropped
			}
			c, literal = rs[i], true
		}
		if c == '$' && literal {
			b.WriteByte('\\')
		}
		b.WriteRune(c)
	}
	if quote != 0 {
		return "", fmt.Errorf("unterminated quote (%c) in %s", quote, w)
	}
	return b.String(), nil
}

// heredocScript is the shell script of a RUN with heredocs, as BuildKit
// runs it: a lone heredoc is the script; else the bodies go back under
// the command line for the shell to read them.
func heredocScript(cmdline string, docs []parser.Heredoc) (string, error) {
	if parser.MustParseHeredoc(cmdline) != nil {
		body := docs[0].Content
		if docs[0].Chomp {
			body = parser.ChompHeredocContent(body)
		}
		// BuildKit runs such a body as a file, by its interpreter.
		if strings.HasPrefix(body, "#!") {
			return "", fmt.Errorf("RUN <<%s with a #! line is not supported: RUN the interpreter on a file", docs[0].Name)
		}
		return strings.TrimSuffix(body, "\n"), nil
	}
	for _, h := range docs {
		cmdline += "\n" + h.Content + h.Name
	}
	return cmdline, nil
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
