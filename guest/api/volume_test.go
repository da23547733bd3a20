package api

import (
	"reflect"
	"testing"
)

func TestParseVolumeSpec(t *testing.T) {
	tests := []struct {
		spec    string
		want    Mount
		wantErr bool
	}{
		{spec: "/data", want: Mount{Type: MountVolume, Target: "/data"}},
		{spec: "db:/var/lib/db", want: Mount{Type: MountVolume, Source: "db", Target: "/var/lib/db"}},
		{spec: "db:/var/lib/db:ro", want: Mount{Type: MountVolume, Source: "db", Target: "/var/lib/db", ReadOnly: true}},
		{spec: "db:/x:nocopy,rw", want: Mount{Type: MountVolume, Source: "db", Target: "/x", NoCopy: true}},
		{spec: "/home/me/src:/app:ro,z", want: Mount{Type: MountBind, Source: "/home/me/src", Target: "/app", ReadOnly: true, CreateSource: true}},
		{spec: "relative", wantErr: true},
		{spec: "db:relative", wantErr: true},
		{spec: "db:/", wantErr: true},
		{spec: "d$b:/x", wantErr: true},
		{spec: "db:/x:bogus", wantErr: true},
		{spec: "a:/b:ro:extra", wantErr: true},
		{spec: "/src:/x:nocopy", wantErr: true},
	}
	for _, tt := range tests {
		got, err := ParseVolumeSpec(tt.spec)
		if (err != nil) != tt.wantErr || err == nil && !reflect.DeepEqual(got, tt.want) {
			t.Errorf("ParseVolumeSpec(%q) = %+v, %v; want %+v, error %v", tt.spec, got, err, tt.want, tt.wantErr)
		}
	}
}

func TestParseMountSpec(t *testing.T) {
	tests := []struct {
		spec    string
		want    Mount
		wantErr bool
	}{
		{spec: "type=volume,source=db,target=/data", want: Mount{Type: MountVolume, Source: "db", Target: "/data"}},
		{spec: "src=db,dst=/data,readonly", want: Mount{Type: MountVolume, Source: "db", Target: "/data", ReadOnly: true}},
		{spec: "type=volume,target=/data,volume-nocopy", want: Mount{Type: MountVolume, Target: "/data", NoCopy: true}},
		{spec: "type=bind,source=/srv,target=/srv,ro=false", want: Mount{Type: MountBind, Source: "/srv", Target: "/srv"}},
		{spec: "type=tmpfs,target=/run,tmpfs-size=1m,tmpfs-mode=1770", want: Mount{Type: MountTmpfs, Target: "/run", TmpfsOptions: "size=1m,mode=1770"}},
		{spec: "type=bind,target=/srv", wantErr: true},
		{spec: "type=bind,source=rel,target=/srv", wantErr: true},
		{spec: "type=tmpfs,source=x,target=/run", wantErr: true},
		{spec: "type=nfs,target=/x", wantErr: true},
		{spec: "source=db", wantErr: true},
		{spec: "type=volume,target=/x,readonly=maybe", wantErr: true},
		{spec: "type=volume,target=/x,bogus=1", wantErr: true},
	}
	for _, tt := range tests {
		got, err := ParseMountSpec(tt.spec)
		if (err != nil) != tt.wantErr || err == nil && !reflect.DeepEqual(got, tt.want) {
			t.Errorf("ParseMountSpec(%q) = %+v, %v; want %+v, error %v", tt.spec, got, err, tt.want, tt.wantErr)
		}
	}
}
