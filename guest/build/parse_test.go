package build

import (
	"reflect"
	"testing"
)

func TestParse(t *testing.T) {
	src := "# syntax comment\nFROM busybox AS base\nRUN echo a \\\n  # inside\n  && echo b\nCOPY --chown=1:2 --from=base a b /dst/\nCMD [\"sh\", \"-c\", \"x\"]\nenv A=1\n"
	got, err := Parse(src)
	if err != nil {
		t.Fatal(err)
	}
	want := []struct {
		cmd   string
		args  []string
		json  bool
		flags map[string]string
		line  int
	}{
		{"FROM", []string{"busybox", "AS", "base"}, false, map[string]string{}, 2},
		{"RUN", []string{"echo", "a", "&&", "echo", "b"}, false, map[string]string{}, 3},
		{"COPY", []string{"a", "b", "/dst/"}, false, map[string]string{"chown": "1:2", "from": "base"}, 6},
		{"CMD", []string{"sh", "-c", "x"}, true, map[string]string{}, 7},
		{"ENV", []string{"A=1"}, false, map[string]string{}, 8},
	}
	if len(got) != len(want) {
		t.Fatalf("got %d instructions: %+v", len(got), got)
	}
	for i, w := range want {
		g := got[i]
		if g.Cmd != w.cmd || !reflect.DeepEqual(g.Args, w.args) || g.JSON != w.json || !reflect.DeepEqual(g.Flags, w.flags) || g.Line != w.line {
			t.Errorf("%d: got %+v, want %+v", i, g, w)
		}
	}
	for _, bad := range []string{"", "# only a comment\n", "FROM busybox\nFROBNICATE x\n"} {
		if _, err := Parse(bad); err == nil {
			t.Errorf("Parse(%q) took it", bad)
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
