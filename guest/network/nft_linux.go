package network

import (
	"fmt"
	"slices"
	"strconv"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
)

// The nftables table vmbox owns, its chains and its set of bridges.
const (
	nftTable       = "vmbox"
	nftPostrouting = "postrouting"
	nftForward     = "forward"
	nftBridges     = "bridges"
)

// syncRules rewrites the vmbox table for the networks that are up, in one
// batch: the kernel applies it whole or not at all, so there is never a
// moment without isolation, and an earlier run's table is replaced
// whatever it holds. Call with the Manager locked.
func (m *Manager) syncRules() error {
	var up []*netState
	for _, n := range m.nets {
		if n.up && n.Driver == DriverBridge {
			up = append(up, n)
		}
	}
	// A stable order keeps the ruleset readable and diffable.
	slices.SortFunc(up, func(a, b *netState) int { return a.Subnet.Addr().Compare(b.Subnet.Addr()) })
	c, err := nftables.New()
	if err != nil {
		return fmt.Errorf("nftables: %w", err)
	}
	if err := buildRules(c, up); err != nil {
		return fmt.Errorf("nftables: %w", err)
	}
	if err := c.Flush(); err != nil {
		return fmt.Errorf("nftables: write table %s: %w", nftTable, err)
	}
	return nil
}

func buildRules(c *nftables.Conn, nets []*netState) error {
	t := &nftables.Table{Family: nftables.TableFamilyIPv4, Name: nftTable}
	// Adding before deleting makes the delete valid when there is no
	// table yet; all three are one transaction.
	c.AddTable(t)
	c.DelTable(t)
	c.AddTable(t)
	accept := nftables.ChainPolicyAccept
	post := c.AddChain(&nftables.Chain{
		Name: nftPostrouting, Table: t, Type: nftables.ChainTypeNAT,
		Hooknum: nftables.ChainHookPostrouting, Priority: nftables.ChainPriorityNATSource, Policy: &accept,
	})
	fwd := c.AddChain(&nftables.Chain{
		Name: nftForward, Table: t, Type: nftables.ChainTypeFilter,
		Hooknum: nftables.ChainHookForward, Priority: nftables.ChainPriorityFilter, Policy: &accept,
	})
	bridges := &nftables.Set{Table: t, Name: nftBridges, KeyType: nftables.TypeIFName}
	var elems []nftables.SetElement
	for _, n := range nets {
		elems = append(elems, nftables.SetElement{Key: ifname(n.Bridge)})
	}
	if err := c.AddSet(bridges, elems); err != nil {
		return fmt.Errorf("set %s: %w", nftBridges, err)
	}
	for _, n := range nets {
		if !n.Internal && masquerades(n.Network) {
			c.AddRule(&nftables.Rule{Table: t, Chain: post, Exprs: masqueradeRule(n)})
		}
		br := ifname(n.Bridge)
		if n.Internal {
			// Nothing enters or leaves an internal network.
			c.AddRule(&nftables.Rule{Table: t, Chain: fwd, Exprs: []expr.Any{
				metaIfname(expr.MetaKeyIIFNAME), cmp(expr.CmpOpEq, br),
				metaIfname(expr.MetaKeyOIFNAME), cmp(expr.CmpOpNeq, br),
				drop(),
			}})
			c.AddRule(&nftables.Rule{Table: t, Chain: fwd, Exprs: []expr.Any{
				metaIfname(expr.MetaKeyOIFNAME), cmp(expr.CmpOpEq, br),
				metaIfname(expr.MetaKeyIIFNAME), cmp(expr.CmpOpNeq, br),
				drop(),
			}})
			continue
		}
		// Networks are isolated from each other: nothing crosses from
		// one vmbox bridge to another (the reply direction is covered by
		// the other bridge's rule).
		c.AddRule(&nftables.Rule{Table: t, Chain: fwd, Exprs: []expr.Any{
			metaIfname(expr.MetaKeyIIFNAME), cmp(expr.CmpOpEq, br),
			metaIfname(expr.MetaKeyOIFNAME), cmp(expr.CmpOpNeq, br),
			&expr.Lookup{SourceRegister: 1, SetName: bridges.Name, SetID: bridges.ID},
			drop(),
		}})
	}
	return nil
}

// masquerades tells whether a network's traffic out of the VM takes the
// VM's address: Docker's enable_ip_masquerade, true unless turned off.
func masquerades(n Network) bool {
	v, ok := n.Options[optMasquerade]
	if !ok {
		return true
	}
	b, err := strconv.ParseBool(v)
	return err != nil || b
}

// masqueradeRule is "ip saddr SUBNET oifname != BRIDGE masquerade".
func masqueradeRule(n *netState) []expr.Any {
	addr := n.Subnet.Addr().As4()
	mask := ipNet(n.Subnet).Mask
	return []expr.Any{
		// IPv4 source address: offset 12 of the network header.
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 12, Len: 4},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4, Mask: []byte(mask), Xor: make([]byte, 4)},
		cmp(expr.CmpOpEq, addr[:]),
		metaIfname(expr.MetaKeyOIFNAME),
		cmp(expr.CmpOpNeq, ifname(n.Bridge)),
		&expr.Masq{},
	}
}

func metaIfname(k expr.MetaKey) *expr.Meta { return &expr.Meta{Key: k, Register: 1} }

func cmp(op expr.CmpOp, data []byte) *expr.Cmp { return &expr.Cmp{Op: op, Register: 1, Data: data} }

func drop() *expr.Verdict { return &expr.Verdict{Kind: expr.VerdictDrop} }

// ifname is an interface name as nftables compares it: IFNAMSIZ bytes,
// NUL padded.
func ifname(s string) []byte {
	b := make([]byte, 16)
	copy(b, s)
	return b
}
