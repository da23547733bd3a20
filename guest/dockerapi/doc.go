// Package dockerapi serves the Docker Engine API from the guest engine, so
// that the docker CLI, Compose, the Docker SDKs and IDEs drive vmbox as
// they drive Docker: HTTP on a Unix socket (api.DockerSocket in the VM,
// which the host process relays to the instance's socket on the host),
// with Docker's paths, version negotiation, status codes, JSON error
// bodies and raw or multiplexed streams on upgraded connections.
//
// It owns the translation between the API's types
// (github.com/moby/moby/api, types only) and the engine's (guest/api);
// the engine and the image store do the work. Endpoints the engine cannot
// serve answer 501 with a message naming the endpoint.
package dockerapi
