package build

import (
	"slices"
	"testing"
)

func TestParse(t *testing.T) {
	type ins struct {
		line int
		orig string // Original(): Cmd, the flags and Raw
		args []string
		json bool
	}
	for _, c := range []struct {
		name, src string
		want      []ins
	}{
		{"continuation, comments, flags, exec form",
			"# syntax comment\nFROM busybox AS base\nRUN echo a \\\n  # inside\n  && echo b\nCOPY --chown=1:2 --from=base a b /dst/\nCMD [\"sh\", \"-c\", \"x\"]\nenv A=1\n",
			[]ins{
				{2, "FROM busybox AS base", []string{"busybox", "AS", "base"}, false},
				// Joined as vmbox always has: Step lines and cache keys.
				{3, "RUN echo a  && echo b", []string{"echo", "a", "&&", "echo", "b"}, false},
				{6, "COPY --chown=1:2 --from=base a b /dst/", []string{"a", "b", "/dst/"}, false},
				{7, `CMD ["sh", "-c", "x"]`, []string{"sh", "-c", "x"}, true},
				{8, "ENV A=1", []string{"A=1"}, false},
			}},
		{"directives and CRLF",
			"# syntax=docker/dockerfile:1\r\n# escape=`\r\nFROM busybox\r\nRUN echo a `\r\n  && echo b\r\nCOPY C:\\src\\ /dst/\r\n",
			[]ins{
				{3, "FROM busybox", []string{"busybox"}, false},
				{4, "RUN echo a  && echo b", []string{"echo", "a", "&&", "echo", "b"}, false},
				{6, `COPY C:\src\ /dst/`, []string{`C:\src\`, "/dst/"}, false},
			}},
		{"an escaped escape ends the line",
			"FROM busybox\nENV C trailing\\\\\nENV D d\n",
			[]ins{
				{1, "FROM busybox", []string{"busybox"}, false},
				{2, `ENV C trailing\\`, []string{`C=trailing\`}, false},
				{3, "ENV D d", []string{"D=d"}, false},
			}},
		{"quoted words",
			"FROM busybox\nCOPY \"a.txt\" '$X' \\$Y $Z /dst/\nCOPY [\"a b.txt\", \"/dst/\"]\nARG A=\"x y\" B\nENV A x \"y\"\nLABEL \"k\"=\"v w\" b='$3'\n",
			[]ins{
				{1, "FROM busybox", []string{"busybox"}, false},
				// A $ kept literal is \$ for expand.
				{2, `COPY "a.txt" '$X' \$Y $Z /dst/`, []string{"a.txt", `\$X`, `\$Y`, "$Z", "/dst/"}, false},
				{3, `COPY ["a b.txt", "/dst/"]`, []string{"a b.txt", "/dst/"}, true},
				{4, `ARG A="x y" B`, []string{"A=x y", "B"}, false},
				{5, `ENV A x "y"`, []string{"A=x y"}, false},
				{6, `LABEL "k"="v w" b='$3'`, []string{"k=v w", `b=\$3`}, false},
			}},
		{"flags",
			"FROM --platform=linux/amd64 busybox\nCOPY --from=\"a b\" --chmod=755 -- --x /y\nRUN\t--mount=type=cache,target=/c   echo hi  \nHEALTHCHECK --interval=5s CMD [\"true\"]\n",
			[]ins{
				{1, "FROM --platform=linux/amd64 busybox", []string{"busybox"}, false},
				{2, "COPY --chmod=755 --from=a b --x /y", []string{"--x", "/y"}, false},
				{3, "RUN --mount=type=cache,target=/c echo hi", []string{"echo", "hi"}, false},
				{4, `HEALTHCHECK --interval=5s CMD ["true"]`, []string{"CMD", `["true"]`}, false},
			}},
		{"heredocs",
			"FROM busybox\nRUN <<EOF\necho $HOME\n\necho b\nEOF\nRUN cat <<'EOF' >/f && \\\n  echo done\n$HOME\nEOF\nRUN <<-EOF\n\techo tab\n\tEOF\nONBUILD RUN <<EOF\necho later\nEOF\nCMD x\n",
			[]ins{
				{1, "FROM busybox", []string{"busybox"}, false},
				// A lone heredoc is the script, the others go back under
				// their command line: the shell reads them.
				{2, "RUN echo $HOME\n\necho b", []string{"echo", "$HOME", "echo", "b"}, false},
				{7, "RUN cat <<'EOF' >/f &&  echo done\n$HOME\nEOF", []string{"cat", "<<'EOF'", ">/f", "&&", "echo", "done", "$HOME", "EOF"}, false},
				{11, "RUN echo tab", []string{"echo", "tab"}, false},
				{14, "ONBUILD RUN <<EOF\necho later\nEOF", []string{"RUN", "<<EOF"}, false},
				{17, "CMD x", []string{"x"}, false},
			}},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, err := Parse(c.src)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(c.want) {
				t.Fatalf("got %d instructions: %+v", len(got), got)
			}
			for i, w := range c.want {
				g := got[i]
				if g.Line != w.line || g.Original() != w.orig || !slices.Equal(g.Args, w.args) || g.JSON != w.json {
					t.Errorf("got %d %q %q %v, want %d %q %q %v", g.Line, g.Original(), g.Args, g.JSON, w.line, w.orig, w.args, w.json)
				}
			}
		})
	}
}

func TestParseErrors(t *testing.T) {
	for src, want := range map[string]string{
		"":                                       "the Dockerfile is empty",
		"# only a comment\n\n":                   "the Dockerfile is empty",
		"FROM busybox\n\nFROBNICATE x\n":         "Dockerfile line 3: unknown instruction: FROBNICATE",
		"FROM busybox\nONBUILD frob x\n":         "Dockerfile line 2: unknown instruction: FROB",
		"# syntax=x\n# escape=x\nFROM busybox\n": "Dockerfile line 2: invalid escape token 'x' does not match ` or \\",
		"FROM busybox\nCMD [1]\n":                "Dockerfile line 2: when using JSON array syntax, arrays must be comprised of strings only",
		"FROM busybox\nENV A\n":                  "Dockerfile line 2: ENV must have two arguments",
		"FROM busybox\nLABEL\n":                  "Dockerfile line 2: LABEL needs at least one argument",
		// As in Docker, whose words are split at spaces, then unquoted.
		"FROM busybox\nCOPY \"a b.txt\" /dst/\n":                           `Dockerfile line 2: unterminated quote (") in "a`,
		"FROM busybox\nENV A='a\\'b'\n":                                    `Dockerfile line 2: unterminated quote (') in A='a\'b'`,
		"FROM busybox\nRUN <<EOF\necho\n":                                  "Dockerfile line 2: unterminated heredoc",
		"FROM busybox\nCOPY <<EOF /f\nx\nEOF\n":                            "Dockerfile line 2: COPY from a heredoc (<<EOF) is not supported: put the file in the build context",
		"FROM busybox\nRUN <<EOF\n#!/usr/bin/env python3\nprint(1)\nEOF\n": "Dockerfile line 2: RUN <<EOF with a #! line is not supported: RUN the interpreter on a file",
	} {
		if _, err := Parse(src); err == nil || err.Error() != want {
			t.Errorf("Parse(%q): %v, want %s", src, err, want)
		}
	}
}

func TestExpand(t *testing.T) {
	vars := map[string]string{"A": "1", "EMPTY": "", "B_2": "two"}
	for in, want := range map[string]string{
		"$A":              "1",
		"${A}x":           "1x",
		"$B_2/$MISSING.":  "two/.",
		"${MISSING:-def}": "def",
		"${EMPTY:-def}":   "def",
		"${A:+alt}":       "alt",
		"${MISSING:+alt}": "",
		`\$A`:             "$A",
		"cost $ 5":        "cost $ 5",
		"no vars":         "no vars",
	} {
		if got := expand(in, vars); got != want {
			t.Errorf("expand(%q) = %q, want %q", in, got, want)
		}
	}
}
