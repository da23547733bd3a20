package container

import (
	"reflect"
	"testing"
)

func TestMergeEnv(t *testing.T) {
	for _, tc := range []struct {
		base, over, want []string
	}{
		{nil, nil, []string{}},
		{[]string{"A=1", "B=2"}, []string{"B=3", "C=4"}, []string{"A=1", "B=3", "C=4"}},
		{[]string{"A=1"}, []string{"A"}, []string{"A"}},
		{[]string{"PATH=/bin", "A=1", "PATH=/usr/bin"}, nil, []string{"PATH=/usr/bin", "A=1"}},
		{[]string{"A=x=y"}, []string{"B="}, []string{"A=x=y", "B="}},
	} {
		if got := MergeEnv(tc.base, tc.over); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("MergeEnv(%q, %q) = %q, want %q", tc.base, tc.over, got, tc.want)
		}
	}
}

func TestValidID(t *testing.T) {
	for id, ok := range map[string]bool{"abc": true, "a-b_c.d": true, "": false, "..": false, "a/b": false, "a b": false} {
		if err := validID(id); (err == nil) != ok {
			t.Errorf("validID(%q) = %v", id, err)
		}
	}
}
