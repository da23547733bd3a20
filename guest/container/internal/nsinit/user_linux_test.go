package nsinit

import (
	"reflect"
	"strings"
	"testing"
)

const testPasswd = `root:x:0:0:root:/root:/bin/sh
# a comment
app:x:1000:1000:app:/home/app:/bin/sh
broken line
nohome:x:1002:1002:nohome::/bin/sh
`

const testGroup = `root:x:0:
app:x:1000:
extra:x:1001:app,other
more:x:1003:other,app
bad:x:zz:app
`

func TestResolveUser(t *testing.T) {
	passwd := parsePasswd(strings.NewReader(testPasswd))
	groups := parseGroup(strings.NewReader(testGroup))
	for _, tc := range []struct {
		spec    string
		want    User
		wantErr string
	}{
		{"", User{UID: 0, GID: 0, Home: "/root"}, ""},
		{"root", User{UID: 0, GID: 0, Home: "/root"}, ""},
		{"app", User{UID: 1000, GID: 1000, Groups: []int{1001, 1003}, Home: "/home/app"}, ""},
		{"1000", User{UID: 1000, GID: 1000, Groups: []int{1001, 1003}, Home: "/home/app"}, ""},
		{"4242", User{UID: 4242, GID: 0, Home: "/"}, ""},
		{"4242:77", User{UID: 4242, GID: 77, Home: "/"}, ""},
		{"app:extra", User{UID: 1000, GID: 1001, Home: "/home/app"}, ""},
		{"app:0", User{UID: 1000, GID: 0, Home: "/home/app"}, ""},
		{"nohome", User{UID: 1002, GID: 1002, Home: "/"}, ""},
		{"ghost", User{}, "unable to find user ghost"},
		{"app:ghosts", User{}, "unable to find group ghosts"},
		{"-1", User{}, "invalid user"},
	} {
		got, err := resolveUser(tc.spec, passwd, groups)
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("%q: error %v, want %q", tc.spec, err, tc.wantErr)
			}
			continue
		}
		if err != nil || !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%q: %+v %v, want %+v", tc.spec, got, err, tc.want)
		}
	}
}
