package cli

import (
	"strings"
	"testing"
	"time"
)

func TestHumanDuration(t *testing.T) {
	for _, tt := range []struct {
		d    time.Duration
		want string
	}{
		{500 * time.Millisecond, "Less than a second"},
		{30 * time.Second, "30 seconds"},
		{90 * time.Second, "About a minute"},
		{5 * time.Hour, "5 hours"},
		{3 * 24 * time.Hour, "3 days"},
		{20 * 24 * time.Hour, "2 weeks"},
		{100 * 24 * time.Hour, "3 months"},
		{3 * 365 * 24 * time.Hour, "3 years"},
	} {
		if got := humanDuration(tt.d); got != tt.want {
			t.Errorf("humanDuration(%v) = %q, want %q", tt.d, got, tt.want)
		}
	}
}

func TestCreatedSince(t *testing.T) {
	for _, tt := range []struct {
		name    string
		created int64
		want    string
	}{
		{"no creation time", time.Time{}.Unix(), "N/A"},
		{"an hour ago", time.Now().Add(-90 * time.Minute).Unix(), "About an hour ago"},
		{"the epoch, as reproducible builds set it", 0, " years ago"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := createdSince(tt.created); got != tt.want && !(tt.want[0] == ' ' && strings.HasSuffix(got, tt.want)) {
				t.Errorf("createdSince(%d) = %q, want %q", tt.created, got, tt.want)
			}
		})
	}
}
