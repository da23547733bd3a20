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
