package api

import (
	"reflect"
	"strings"
	"testing"
)

func TestParsePortSpec(t *testing.T) {
	tcp := func(ip string, host, ctr uint16) PortBinding {
		return PortBinding{HostIP: ip, HostPort: host, ContainerPort: ctr, Proto: "tcp"}
	}
	tests := []struct {
		spec    string
		want    []PortBinding
		wantErr string
	}{
		{spec: "80", want: []PortBinding{tcp("", 0, 80)}},
		{spec: "8080:80", want: []PortBinding{tcp("", 8080, 80)}},
		{spec: "127.0.0.1:8080:80", want: []PortBinding{tcp("127.0.0.1", 8080, 80)}},
		{spec: "0.0.0.0::80", want: []PortBinding{tcp("0.0.0.0", 0, 80)}},
		{spec: "[::1]:8080:80", want: []PortBinding{tcp("::1", 8080, 80)}},
		{spec: "53:53/udp", want: []PortBinding{{HostPort: 53, ContainerPort: 53, Proto: "udp"}}},
		{spec: "80/TCP", want: []PortBinding{tcp("", 0, 80)}},
		{spec: "8000-8002:9000-9002", want: []PortBinding{tcp("", 8000, 9000), tcp("", 8001, 9001), tcp("", 8002, 9002)}},
		{spec: "9000-9001", want: []PortBinding{tcp("", 0, 9000), tcp("", 0, 9001)}},
		{spec: "80/sctp", wantErr: "protocol must be tcp or udp"},
		{spec: "", wantErr: "container port"},
		{spec: "0", wantErr: "not a port number"},
		{spec: "65536", wantErr: "not a port number"},
		{spec: "http", wantErr: "not a port number"},
		{spec: "foo:8080:80", wantErr: "is not an IP address"},
		{spec: "1:2:3:4", wantErr: "too many colons"},
		{spec: "[::1:80", wantErr: "unterminated IPv6"},
		{spec: "8000-8001:80-82", wantErr: "differ in length"},
		{spec: "90-80", wantErr: "ends before it starts"},
	}
	for _, tt := range tests {
		t.Run(tt.spec, func(t *testing.T) {
			got, err := ParsePortSpec(tt.spec)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) || strings.Contains(err.Error(), "\n") {
					t.Fatalf("ParsePortSpec(%q) = %v, %v; want one line containing %q", tt.spec, got, err, tt.wantErr)
				}
				return
			}
			if err != nil || !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("ParsePortSpec(%q) = %+v, %v; want %+v", tt.spec, got, err, tt.want)
			}
		})
	}
}

func TestPortBindingString(t *testing.T) {
	tests := []struct {
		b    PortBinding
		want string
	}{
		{PortBinding{HostPort: 8080, ContainerPort: 80, Proto: "tcp"}, "127.0.0.1:8080->80/tcp"},
		{PortBinding{HostIP: "0.0.0.0", HostPort: 53, ContainerPort: 53, Proto: "udp"}, "0.0.0.0:53->53/udp"},
		{PortBinding{HostIP: "::1", HostPort: 1, ContainerPort: 2, Proto: "tcp"}, "[::1]:1->2/tcp"},
	}
	for _, tt := range tests {
		if got := tt.b.String(); got != tt.want {
			t.Errorf("%+v.String() = %q, want %q", tt.b, got, tt.want)
		}
	}
}

func TestParseExposedPort(t *testing.T) {
	tests := []struct {
		key   string
		port  uint16
		proto string
		ok    bool
	}{
		{"80/tcp", 80, "tcp", true},
		{"53/udp", 53, "udp", true},
		{"8080", 8080, "tcp", true},
		{"80/sctp", 0, "", false},
		{"x/tcp", 0, "", false},
	}
	for _, tt := range tests {
		p, proto, err := ParseExposedPort(tt.key)
		if (err == nil) != tt.ok || p != tt.port || proto != tt.proto {
			t.Errorf("ParseExposedPort(%q) = %d, %q, %v", tt.key, p, proto, err)
		}
	}
}
