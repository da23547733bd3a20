package engine

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/vmbox/vmbox/guest/api"
	"github.com/vmbox/vmbox/guest/image"
)

// recordingImages is an image store that holds the images named in have
// and records the pulls it is asked for.
type recordingImages struct {
	have  map[string]bool
	pulls []image.PullOptions
}

func (r *recordingImages) Get(ref string) (*image.Image, error) {
	if r.have[ref] {
		return &image.Image{ID: "sha256:" + ref}, nil
	}
	return nil, fmt.Errorf("%s: %w", ref, image.ErrNotFound)
}

// Commit is not what these tests look at.
func (r *recordingImages) Commit(image.CommitOptions) (*image.Image, error) {
	return nil, fmt.Errorf("commit: %w", image.ErrNotFound)
}

func (r *recordingImages) Pull(_ context.Context, ref string, opts image.PullOptions, progress func(api.PullProgress)) (*image.Image, error) {
	r.pulls = append(r.pulls, opts)
	if progress != nil {
		progress(api.PullProgress{Status: "pulled " + ref})
	}
	return &image.Image{ID: "sha256:" + ref}, nil
}

// TestImagePullPolicy checks that the engine alone applies the pull policy
// and that each call's credentials and insecure registries reach the pull.
func TestImagePullPolicy(t *testing.T) {
	auth := &api.RegistryAuth{Username: "u", Password: "p"}
	for _, tc := range []struct {
		policy    string
		have      bool
		wantPulls int
		wantErr   error
	}{
		{policy: "", have: true, wantPulls: 0},
		{policy: "", have: false, wantPulls: 1},
		{policy: "missing", have: false, wantPulls: 1},
		{policy: "always", have: true, wantPulls: 1},
		{policy: "never", have: false, wantPulls: 0, wantErr: image.ErrNotFound},
		{policy: "sometimes", have: true, wantPulls: 0, wantErr: ErrInvalid},
	} {
		t.Run(fmt.Sprintf("%s/have=%v", tc.policy, tc.have), func(t *testing.T) {
			imgs := &recordingImages{have: map[string]bool{"img": tc.have}}
			e := &Engine{opts: Options{Images: imgs, Pull: image.PullOptions{InsecureRegistries: []string{"base:5000"}}}, closed: make(chan struct{})}
			var progressed bool
			pull := PullOptions{Auth: auth, InsecureRegistries: []string{"call:5000"}, Progress: func(api.PullProgress) { progressed = true }}
			_, err := e.image(context.Background(), api.ContainerConfig{Image: "img", Pull: tc.policy, Platform: "linux/arm64"}, pull)
			if !errors.Is(err, tc.wantErr) || (tc.wantErr == nil) != (err == nil) {
				t.Fatalf("err %v, want %v", err, tc.wantErr)
			}
			if len(imgs.pulls) != tc.wantPulls {
				t.Fatalf("%d pulls, want %d", len(imgs.pulls), tc.wantPulls)
			}
			if tc.wantPulls == 0 {
				return
			}
			got := imgs.pulls[0]
			if got.Auth != auth || got.Platform != "linux/arm64" || fmt.Sprint(got.InsecureRegistries) != "[base:5000 call:5000]" || !progressed {
				t.Errorf("pull options %+v (progress reported: %v)", got, progressed)
			}
		})
	}
}
