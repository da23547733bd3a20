package instance

import (
	"path/filepath"
	"testing"
)

func TestDockerHost(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		name, goos, want string
	}{
		{"default", "linux", "unix://" + filepath.Join(dir, "default", DockerSocketFile)},
		{"dev", "darwin", "unix://" + filepath.Join(dir, "dev", DockerSocketFile)},
		{"default", "windows", "npipe:////./pipe/vmbox-default-docker"},
		{"my.vm_2", "windows", "npipe:////./pipe/vmbox-my.vm_2-docker"},
	} {
		inst := &Instance{Dir: filepath.Join(dir, tc.name), Config: Config{Name: tc.name}}
		if got := inst.dockerHost(tc.goos); got != tc.want {
			t.Errorf("%s on %s: DockerHost = %q, want %q", tc.name, tc.goos, got, tc.want)
		}
	}
	inst := &Instance{Dir: filepath.Join(dir, "x"), Config: Config{Name: "x"}}
	if got, want := inst.DockerPipe(), `\\.\pipe\vmbox-x-docker`; got != want {
		t.Errorf("DockerPipe = %q, want %q", got, want)
	}
}

// A store named by a relative VMBOX_HOME still gives an absolute socket.
func TestDockerHostAbsolute(t *testing.T) {
	t.Chdir(t.TempDir())
	inst := &Instance{Dir: filepath.Join("home", "default"), Config: Config{Name: "default"}}
	abs, err := filepath.Abs(inst.Path(DockerSocketFile))
	if err != nil {
		t.Fatal(err)
	}
	if got := inst.dockerHost("linux"); got != "unix://"+abs {
		t.Errorf("DockerHost = %q, want unix://%s", got, abs)
	}
}
