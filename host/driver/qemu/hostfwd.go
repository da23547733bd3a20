package qemu

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"strings"
)

// forwardAttempts bounds the retries when another process takes the free
// port between choosing it and QEMU binding it.
const forwardAttempts = 3

// ForwardToGuest adds a hostfwd rule to the VM's user networking from a
// free host loopback port to target. Slirp delivers the connection to
// target's address as the destination, so the guest must route it (and
// answer ARP for it: vmconfig.Network.ProxyARP). It implements
// driver.GuestForwarder.
func (v *VM) ForwardToGuest(ctx context.Context, target netip.AddrPort) (netip.AddrPort, error) {
	if !target.Addr().Is4() {
		return netip.AddrPort{}, fmt.Errorf("forward to %s: user networking reaches IPv4 addresses only", target)
	}
	var err error
	for range forwardAttempts {
		var port int
		if port, err = freeLoopbackPort(); err != nil {
			break
		}
		host := netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, 0, 0, 1}), uint16(port))
		var out string
		line := fmt.Sprintf("hostfwd_add %s tcp:%s-%s", slirpNetdev, host, target)
		if out, err = v.hmp(ctx, line); err != nil {
			break
		}
		if out == "" {
			return host, nil
		}
		err = fmt.Errorf("%s: %s", line, out)
		if !strings.Contains(out, hostForwardFailure) {
			break
		}
	}
	return netip.AddrPort{}, fmt.Errorf("forward a host port to %s in VM %s: %w", target, v.name, err)
}

// RemoveForward removes a rule ForwardToGuest added. It implements
// driver.GuestForwarder.
func (v *VM) RemoveForward(ctx context.Context, host netip.AddrPort) error {
	line := fmt.Sprintf("hostfwd_remove %s tcp:%s", slirpNetdev, host)
	out, err := v.hmp(ctx, line)
	if err == nil && !strings.HasSuffix(out, " removed") {
		err = fmt.Errorf("%s: %s", line, out)
	}
	if err != nil {
		return fmt.Errorf("remove the forward of %s in VM %s: %w", host, v.name, err)
	}
	return nil
}

// hmp runs a human-monitor command and returns its output, which is
// where its failures show: QMP's reply itself succeeds.
func (v *VM) hmp(ctx context.Context, line string) (string, error) {
	select {
	case <-v.done:
		return "", errors.New("the VM has exited")
	default:
	}
	ret, err := QMP(ctx, v.qmpSocket, "human-monitor-command", map[string]string{"command-line": line})
	if err != nil {
		return "", err
	}
	var out string
	if len(ret) > 0 {
		if err := json.Unmarshal(ret, &out); err != nil {
			return "", fmt.Errorf("%s: reply %s: %w", line, ret, err)
		}
	}
	return strings.TrimSpace(out), nil
}
