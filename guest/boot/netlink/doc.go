// Package netlink owns a minimal rtnetlink client: just what the guest
// needs to bring links up, set IPv4 addresses and a default route, and to
// wait for a link to appear. Messages are built as bytes so their encoding
// is testable on its own.
package netlink
