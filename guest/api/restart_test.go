package api

import "testing"

func TestParseRestartPolicy(t *testing.T) {
	for _, tt := range []struct {
		in      string
		want    RestartPolicy
		wantErr string
	}{
		{in: "", want: RestartPolicy{}},
		{in: "no", want: RestartPolicy{Name: "no"}},
		{in: "always", want: RestartPolicy{Name: "always"}},
		{in: "unless-stopped", want: RestartPolicy{Name: "unless-stopped"}},
		{in: "on-failure", want: RestartPolicy{Name: "on-failure"}},
		{in: "on-failure:3", want: RestartPolicy{Name: "on-failure", MaximumRetryCount: 3}},
		{in: ":3", wantErr: "invalid restart policy format: no policy provided before colon"},
		{in: "on-failure:x", wantErr: "invalid restart policy format: maximum retry count must be an integer"},
		{in: "on-failure:-1", wantErr: "invalid restart policy: maximum retry count cannot be negative"},
		{in: "always:2", wantErr: "invalid restart policy: maximum retry count can only be used with 'on-failure'"},
		{in: "sometimes", wantErr: "invalid restart policy: unknown policy 'sometimes'; use one of 'no', 'always', 'on-failure', or 'unless-stopped'"},
	} {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseRestartPolicy(tt.in)
			if tt.wantErr != "" {
				if err == nil || err.Error() != tt.wantErr {
					t.Fatalf("ParseRestartPolicy(%q) = %+v, %v; want error %q", tt.in, got, err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("ParseRestartPolicy(%q) = %+v, %v; want %+v", tt.in, got, err, tt.want)
			}
		})
	}
}
