// Package dhcptest gives tests a one-address DHCP server to run the guest's
// DHCP client against, across a veth pair between network namespaces.
package dhcptest
