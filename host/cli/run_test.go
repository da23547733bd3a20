package cli

import (
	"errors"
	"testing"

	"github.com/vmbox/vmbox/guest/api"
)

func TestRunRestartFlag(t *testing.T) {
	for _, tt := range []struct {
		args    []string
		want    api.RestartPolicy
		wantErr string
	}{
		{args: nil, want: api.RestartPolicy{}},
		{args: []string{"--restart", "no"}, want: api.RestartPolicy{}},
		{args: []string{"--restart", "always"}, want: api.RestartPolicy{Name: "always"}},
		{args: []string{"--restart", "on-failure:3"}, want: api.RestartPolicy{Name: "on-failure", MaximumRetryCount: 3}},
		{args: []string{"--restart", "sometimes"}, wantErr: "invalid restart policy: unknown policy 'sometimes'; use one of 'no', 'always', 'on-failure', or 'unless-stopped'"},
		{args: []string{"--restart", "unless-stopped", "--rm"}, wantErr: "Conflicting options: --restart and --rm"},
		{args: []string{"--rm", "--restart", "no"}, want: api.RestartPolicy{}},
	} {
		cfg, err := runConfig(t, append(tt.args, "busybox")...)
		if tt.wantErr != "" {
			var ee *ExitError
			if !errors.As(err, &ee) || ee.Code != api.ExitEngineError || ee.Message != tt.wantErr {
				t.Errorf("%q: err = %v, want exit 125 with %q", tt.args, err, tt.wantErr)
			}
			continue
		}
		if err != nil || cfg.RestartPolicy != tt.want {
			t.Errorf("%q: policy %+v, %v; want %+v", tt.args, cfg.RestartPolicy, err, tt.want)
		}
	}
}
