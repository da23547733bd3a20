package api

import (
	"reflect"
	"testing"
)

func TestParseFilters(t *testing.T) {
	for _, tt := range []struct {
		in      []string
		want    Filters
		wantErr string
	}{
		{in: nil, want: nil},
		{in: []string{"label=a=b", "label=c", "NAME=web"}, want: Filters{"label": {"a=b", "c"}, "name": {"web"}}},
		{in: []string{"status"}, wantErr: "bad format of filter (expected name=value): status"},
		{in: []string{"colour=red"}, wantErr: "invalid filter 'colour'"},
	} {
		got, err := ParseFilters(tt.in, "label", "name", "status")
		if tt.wantErr != "" {
			if err == nil || err.Error() != tt.wantErr {
				t.Errorf("%q: err %v, want %q", tt.in, err, tt.wantErr)
			}
			continue
		}
		if err != nil || !reflect.DeepEqual(got, tt.want) {
			t.Errorf("%q = %v, %v; want %v", tt.in, got, err, tt.want)
		}
	}
}

func TestMatchLabels(t *testing.T) {
	labels := map[string]string{"app": "web", "tier": ""}
	for _, tt := range []struct {
		want  []string
		match bool
	}{
		{nil, true},
		{[]string{"app"}, true},
		{[]string{"app=web"}, true},
		{[]string{"app=db"}, false},
		{[]string{"tier="}, true},
		{[]string{"app", "missing"}, false},
	} {
		if got := MatchLabels(labels, tt.want); got != tt.match {
			t.Errorf("MatchLabels(%v) = %v, want %v", tt.want, got, tt.match)
		}
	}
}
