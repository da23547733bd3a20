// Package engine owns the container lifecycle that the agent serves: create
// (pulling a missing image), attach, start, wait, logs, exec, stop, kill,
// remove, list, inspect and resize, shaped so that each maps onto the
// Docker Engine API call of the same name. It keeps each container's state
// and logs under its data directory, recovers them after a restart, and
// drives guest/container for the processes themselves.
//
// It is also the one way images are pulled (Create, Run and Pull), so that
// the pull policy and each request's credentials are applied in one place.
package engine
