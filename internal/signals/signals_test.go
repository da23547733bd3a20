package signals

import "testing"

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		in      string
		want    int
		wantErr bool
	}{
		{in: "TERM", want: 15},
		{in: "SIGTERM", want: 15},
		{in: "sigterm", want: 15},
		{in: "term", want: 15},
		{in: "SigKill", want: 9},
		{in: "INT", want: 2},
		{in: "USR1", want: 10},
		{in: "USR2", want: 12},
		{in: "WINCH", want: 28},
		{in: "SYS", want: 31},
		{in: "9", want: 9},
		{in: "1", want: 1},
		{in: "64", want: 64},
		{in: "0", wantErr: true},
		{in: "65", wantErr: true},
		{in: "-1", wantErr: true},
		{in: "", wantErr: true},
		{in: "SIG", wantErr: true},
		{in: "NOPE", wantErr: true},
		{in: "SIGNOPE", wantErr: true},
		{in: "SIGSIGTERM", wantErr: true},
	} {
		got, err := Parse(tc.in)
		if (err != nil) != tc.wantErr || got != tc.want {
			t.Errorf("Parse(%q) = %d, %v; want %d (error: %v)", tc.in, got, err, tc.want, tc.wantErr)
		}
	}
}

func TestName(t *testing.T) {
	for _, tc := range []struct {
		num  int
		want string
	}{
		{1, "HUP"}, {2, "INT"}, {3, "QUIT"}, {6, "ABRT"}, {9, "KILL"},
		{10, "USR1"}, {12, "USR2"}, {15, "TERM"}, {0, ""}, {34, ""}, {-1, ""},
	} {
		if got := Name(tc.num); got != tc.want {
			t.Errorf("Name(%d) = %q, want %q", tc.num, got, tc.want)
		}
	}
}

func TestSSHName(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"SIGINT", "INT"}, {"SIGUSR1", "USR1"}, {"term", "TERM"}, {"15", "TERM"},
		{"SIGINFO", ""}, {"", ""}, {"40", ""},
	} {
		if got := SSHName(tc.in); got != tc.want {
			t.Errorf("SSHName(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

// TestNamesRoundTrip checks that every named signal parses back to its own
// number, so that the table has no duplicate or misspelt entry.
func TestNamesRoundTrip(t *testing.T) {
	seen := map[int]bool{}
	for _, sig := range linux {
		if seen[sig.num] {
			t.Errorf("signal %d listed twice", sig.num)
		}
		seen[sig.num] = true
		if n, err := Parse("SIG" + sig.name); err != nil || n != sig.num {
			t.Errorf("Parse(SIG%s) = %d, %v; want %d", sig.name, n, err, sig.num)
		}
	}
}
