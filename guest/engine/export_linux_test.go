package engine

import "context"

// AttachAsync is Attach with its registration done before it returns and
// its serving in the background, Attach's result arriving on the channel.
// Calling Attach in a goroutine and then Start races: the attachment may
// register after the container has written its first output.
func AttachAsync(ctx context.Context, e *Engine, ref string, s Streams) (<-chan error, error) {
	serve, err := e.AttachNow(ref, s)
	if err != nil {
		return nil, err
	}
	done := make(chan error, 1)
	go func() { done <- serve(ctx) }()
	return done, nil
}
