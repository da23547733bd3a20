package dockerapi

import (
	"reflect"
	"testing"

	"github.com/vmbox/vmbox/guest/api"
)

func TestParseFilters(t *testing.T) {
	tests := []struct {
		raw     string
		want    api.Filters
		wantErr bool
	}{
		{raw: "", want: api.Filters{}},
		{raw: `{"label":{"a=b":true,"c":true},"status":{"exited":true}}`, want: api.Filters{"label": {"a=b", "c"}, "status": {"exited"}}},
		{raw: `{"name":["web"]}`, want: api.Filters{"name": {"web"}}},
		{raw: `{"label":{"off":false}}`, want: api.Filters{}},
		{raw: `{"name":"web"}`, wantErr: true},
		{raw: `not json`, wantErr: true},
	}
	for _, tt := range tests {
		got, err := parseFilters(tt.raw)
		if (err != nil) != tt.wantErr {
			t.Errorf("parseFilters(%q) error %v, want error %v", tt.raw, err, tt.wantErr)
			continue
		}
		if err == nil && !reflect.DeepEqual(got, tt.want) {
			t.Errorf("parseFilters(%q) = %v, want %v", tt.raw, got, tt.want)
		}
	}
}

func TestMatchImage(t *testing.T) {
	im := api.ImageSummary{RepoTags: []string{"busybox:latest", "127.0.0.1:5000/busybox:v1"}, Labels: map[string]string{"team": "a"}}
	tests := []struct {
		filters  api.Filters
		wantOK   bool
		wantTags []string
	}{
		{api.Filters{}, true, im.RepoTags},
		{api.Filters{"reference": {"busybox"}}, true, []string{"busybox:latest"}},
		{api.Filters{"reference": {"*/busybox:v1"}}, true, []string{"127.0.0.1:5000/busybox:v1"}},
		{api.Filters{"reference": {"alpine"}}, false, nil},
		{api.Filters{"dangling": {"true"}}, false, nil},
		{api.Filters{"label": {"team=a"}}, true, im.RepoTags},
		{api.Filters{"label": {"team=b"}}, false, nil},
	}
	for _, tt := range tests {
		got, ok := matchImage(im, tt.filters)
		if ok != tt.wantOK || ok && !reflect.DeepEqual(got.RepoTags, tt.wantTags) {
			t.Errorf("matchImage(%v) = %v %v, want %v %v", tt.filters, got.RepoTags, ok, tt.wantTags, tt.wantOK)
		}
	}
}
