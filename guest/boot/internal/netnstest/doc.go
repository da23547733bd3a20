// Package netnstest gives the tests of guest/boot and its network
// subpackages throw-away network namespaces to configure, so that they
// never touch the host's own network.
package netnstest
