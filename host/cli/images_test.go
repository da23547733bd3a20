package cli

import (
	"strings"
	"testing"
	"time"
)

func TestCreatedSince(t *testing.T) {
	for _, tt := range []struct {
		name    string
		created int64
		want    string
	}{
		{"no creation time", time.Time{}.Unix(), "N/A"},
		{"an hour ago", time.Now().Add(-70 * time.Minute).Unix(), "About an hour ago"},
		{"the epoch, as reproducible builds set it", 0, " years ago"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := createdSince(tt.created); got != tt.want && !(tt.want[0] == ' ' && strings.HasSuffix(got, tt.want)) {
				t.Errorf("createdSince(%d) = %q, want %q", tt.created, got, tt.want)
			}
		})
	}
}
