// Package network owns Docker's bridge networking inside the guest: the
// networks (persisted, with their address pools), a Linux bridge per
// network, a veth pair per container endpoint, the vmbox nftables table
// (outbound masquerade and isolation between networks), IPv4 forwarding,
// and an embedded DNS server per user network that resolves the names of
// the containers on it and forwards everything else to the VM's
// nameservers.
//
// Networks are kept on disk; endpoints live in memory only, because
// containers do not outlive the process that started them. Nothing touches
// the kernel until a container first joins a network, so that a VM that
// runs no container pays nothing for networking at boot.
package network
