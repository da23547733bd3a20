package api

import (
	"reflect"
	"strings"
	"testing"
)

func TestRequestRoundTrip(t *testing.T) {
	cases := []struct {
		name string
		op   string
		args any
		into any
	}{
		{"no arguments", OpVersion, nil, nil},
		{"run", OpRun, RunArgs{Config: ContainerConfig{Image: "busybox", Cmd: []string{"echo", "hi"}, Memory: 32 << 20}}, &RunArgs{}},
		{"logs", OpLogs, LogsArgs{Container: "c", Tail: -1, Follow: true}, &LogsArgs{}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r, err := NewRequest(tc.op, tc.args)
			if err != nil {
				t.Fatal(err)
			}
			if r.Op != tc.op {
				t.Fatalf("op %q", r.Op)
			}
			if tc.into == nil {
				if len(r.Args) != 0 {
					t.Fatalf("args %s for no arguments", r.Args)
				}
				return
			}
			if err := r.Decode(tc.into); err != nil {
				t.Fatal(err)
			}
			if got := reflect.ValueOf(tc.into).Elem().Interface(); !reflect.DeepEqual(got, tc.args) {
				t.Fatalf("round trip: %+v != %+v", got, tc.args)
			}
		})
	}
}

func TestDecodeRejectsMismatchedArguments(t *testing.T) {
	r := Request{Op: OpStop, Args: []byte(`{"container": 5}`)}
	var a StopArgs
	if err := r.Decode(&a); err == nil || !strings.Contains(err.Error(), "stop") {
		t.Fatalf("Decode = %v", err)
	}
}
