package dockerapi

import (
	"encoding/json"
	"reflect"
	"testing"

	"github.com/moby/moby/api/types/container"

	"github.com/vmbox/vmbox/guest/api"
)

// TestCreateConfig feeds create bodies as clients send them (JSON) and
// checks the engine configuration they become.
func TestCreateConfig(t *testing.T) {
	tests := []struct {
		name    string
		body    string
		want    api.ContainerConfig
		wantErr bool
	}{
		{
			name: "plain",
			body: `{"Image":"busybox","Cmd":["echo","hi"],"Env":["A=1"],"Labels":{"k":"v"}}`,
			want: api.ContainerConfig{Image: "busybox", Name: "n", Cmd: []string{"echo", "hi"}, Env: []string{"A=1"}, Labels: map[string]string{"k": "v"}, Pull: "never"},
		},
		{
			name: "entrypoint cleared",
			body: `{"Image":"busybox","Entrypoint":[""]}`,
			want: api.ContainerConfig{Image: "busybox", Name: "n", EntrypointSet: true, Pull: "never"},
		},
		{
			name: "host config",
			body: `{"Image":"busybox","ExposedPorts":{"80/tcp":{}},"HostConfig":{"AutoRemove":true,"Memory":67108864,"CpuQuota":50000,"CpuPeriod":100000,"PidsLimit":10,
				"NetworkMode":"mynet","PortBindings":{"80/tcp":[{"HostIp":"","HostPort":"8080"}],"53/udp":[{"HostIp":"0.0.0.0","HostPort":""}]},
				"RestartPolicy":{"Name":"on-failure","MaximumRetryCount":3},"Dns":["1.1.1.1"],"Tmpfs":{"/run":"size=1m"},
				"Mounts":[{"Type":"tmpfs","Target":"/tmp","TmpfsOptions":{"SizeBytes":1024,"Mode":1023}}]},
				"NetworkingConfig":{"EndpointsConfig":{"mynet":{"Aliases":["web"]}}}}`,
			want: api.ContainerConfig{Image: "busybox", Name: "n", Pull: "never", ExposedPorts: []string{"80/tcp"},
				AutoRemove: true, Memory: 64 << 20, NanoCPUs: 5e8, PidsLimit: 10, NetworkMode: "mynet", NetworkAliases: []string{"web"},
				PortBindings:  []api.PortBinding{{HostIP: "0.0.0.0", ContainerPort: 53, Proto: "udp"}, {HostPort: 8080, ContainerPort: 80, Proto: "tcp"}},
				RestartPolicy: api.RestartPolicy{Name: "on-failure", MaximumRetryCount: 3}, DNS: []string{"1.1.1.1"},
				Tmpfs:  map[string]string{"/run": "size=1m"},
				Mounts: []api.Mount{{Type: api.MountTmpfs, Target: "/tmp", TmpfsOptions: "size=1024,mode=1777"}}},
		},
		{
			name: "restart no is none",
			body: `{"Image":"busybox","HostConfig":{"RestartPolicy":{"Name":"no"},"NetworkMode":"default"}}`,
			want: api.ContainerConfig{Image: "busybox", Name: "n", Pull: "never"},
		},
		{
			name: "binds, mounts, volumes",
			body: `{"Image":"busybox","Volumes":{"/anon":{}},"HostConfig":{"Binds":["/a:/b:ro","db:/data"],"VolumesFrom":["other:ro"],
				"Mounts":[{"Type":"volume","Source":"v","Target":"/v","VolumeOptions":{"NoCopy":true}},{"Type":"bind","Source":"/s","Target":"/t","ReadOnly":true}]}}`,
			want: api.ContainerConfig{Image: "busybox", Name: "n", Pull: "never", VolumesFrom: []string{"other:ro"}, Mounts: []api.Mount{
				{Type: api.MountVolume, Target: "/anon"},
				{Type: api.MountBind, Source: "/a", Target: "/b", ReadOnly: true, CreateSource: true},
				{Type: api.MountVolume, Source: "db", Target: "/data"},
				{Type: api.MountVolume, Source: "v", Target: "/v", NoCopy: true},
				{Type: api.MountBind, Source: "/s", Target: "/t", ReadOnly: true},
			}},
		},
		{name: "bad bind", body: `{"Image":"busybox","HostConfig":{"Binds":["/a:relative"]}}`, wantErr: true},
		{name: "npipe mount refused", body: `{"Image":"busybox","HostConfig":{"Mounts":[{"Type":"npipe","Target":"/data"}]}}`, wantErr: true},
		{name: "bad host port", body: `{"Image":"busybox","HostConfig":{"PortBindings":{"80/tcp":[{"HostPort":"x"}]}}}`, wantErr: true},
		{name: "no config", body: `{}`, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var req container.CreateRequest
			if err := json.Unmarshal([]byte(tt.body), &req); err != nil {
				t.Fatal(err)
			}
			if tt.name == "no config" {
				req.Config = nil
			}
			got, err := createConfig("n", req)
			if (err != nil) != tt.wantErr {
				t.Fatalf("error %v, want error %v", err, tt.wantErr)
			}
			if err == nil && !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got  %+v\nwant %+v", got, tt.want)
			}
		})
	}
}
