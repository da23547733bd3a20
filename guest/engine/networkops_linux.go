package engine

import (
	"time"

	"context"
	"fmt"
	"net/netip"
	"slices"
	"sort"
	"strconv"

	"github.com/vmbox/vmbox/guest/api"
	"github.com/vmbox/vmbox/guest/container"
	"github.com/vmbox/vmbox/guest/network"
)

// networks returns the network manager, or an error when the engine has
// none.
func (e *Engine) networks() (*network.Manager, error) {
	if e.opts.Networks == nil {
		return nil, fmt.Errorf("%w: this engine has no networks", ErrInvalid)
	}
	return e.opts.Networks, nil
}

// NetworkCreate creates a user network.
func (e *Engine) NetworkCreate(ctx context.Context, args api.NetworkCreateArgs) (api.NetworkCreateReply, error) {
	m, err := e.networks()
	if err != nil {
		return api.NetworkCreateReply{}, err
	}
	n, err := m.Create(ctx, args)
	if err != nil {
		return api.NetworkCreateReply{}, networkErr(err)
	}
	e.events.publish(networkEvent("create", n.ID, n.Name, ""))
	return api.NetworkCreateReply{ID: n.ID}, nil
}

// NetworkList lists the networks, the predefined ones first, then by name.
func (e *Engine) NetworkList() ([]api.NetworkResource, error) {
	m, err := e.networks()
	if err != nil {
		return nil, err
	}
	list := m.List()
	sort.SliceStable(list, func(i, j int) bool {
		if list[i].Predefined != list[j].Predefined {
			return list[i].Predefined
		}
		return list[i].Name < list[j].Name
	})
	out := make([]api.NetworkResource, 0, len(list))
	for _, n := range list {
		r, err := m.Resource(n.ID)
		if err != nil {
			continue // removed meanwhile
		}
		out = append(out, r)
	}
	return out, nil
}

// NetworkInspect describes one network.
func (e *Engine) NetworkInspect(ref string) (api.NetworkResource, error) {
	m, err := e.networks()
	if err != nil {
		return api.NetworkResource{}, err
	}
	r, err := m.Resource(ref)
	return r, networkErr(err)
}

// NetworkRemove removes a user network that no container uses, running or
// not: a stopped container's network is part of what the user keeps.
func (e *Engine) NetworkRemove(ctx context.Context, ref string) error {
	m, err := e.networks()
	if err != nil {
		return err
	}
	n, err := m.Get(ref)
	if err != nil {
		return networkErr(err)
	}
	if users := e.networkUsers(n.ID); len(users) > 0 && !n.Predefined {
		return fmt.Errorf("%w: error while removing network: network %s id %s has active endpoints (containers %v)", ErrConflict, n.Name, n.ID, users)
	}
	if err := m.Remove(ctx, n.ID); err != nil {
		return networkErr(err)
	}
	e.events.publish(networkEvent("destroy", n.ID, n.Name, ""))
	return nil
}

// networkEvent is an event of network id, with the container it concerns
// when there is one.
func networkEvent(action, id, name, containerID string) Event {
	attrs := map[string]string{"name": name, "type": "bridge"}
	if containerID != "" {
		attrs["container"] = containerID
	}
	return Event{Type: "network", Action: action, ID: id, Attributes: attrs, Time: time.Now()}
}

// networkUsers names the containers configured with network id.
func (e *Engine) networkUsers(id string) []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []string
	for _, c := range e.byID {
		for _, a := range c.rec.Networks {
			if a.Network == id {
				out = append(out, c.rec.Name)
			}
		}
	}
	sort.Strings(out)
	return out
}

// NetworkPrune removes the user networks no container uses.
func (e *Engine) NetworkPrune(ctx context.Context) (api.NetworkPruneReply, error) {
	m, err := e.networks()
	if err != nil {
		return api.NetworkPruneReply{}, err
	}
	out := api.NetworkPruneReply{NetworksDeleted: []string{}}
	for _, n := range m.List() {
		if n.Predefined || len(e.networkUsers(n.ID)) > 0 {
			continue
		}
		if err := m.Remove(ctx, n.ID); err != nil {
			continue // in use meanwhile
		}
		out.NetworksDeleted = append(out.NetworksDeleted, n.Name)
	}
	sort.Strings(out.NetworksDeleted)
	return out, nil
}

// NetworkConnect puts a container on one more network: at once when it
// runs, and at each start.
func (e *Engine) NetworkConnect(ctx context.Context, args api.NetworkConnectArgs) error {
	m, err := e.networks()
	if err != nil {
		return err
	}
	n, err := m.Get(args.Network)
	if err != nil {
		return networkErr(err)
	}
	if n.Predefined && n.Name != api.NetworkBridge {
		return fmt.Errorf("%w: container cannot be disconnected from host network or connected to host network", ErrInvalid)
	}
	if args.IPv4Address != "" {
		if _, err := netip.ParseAddr(args.IPv4Address); err != nil {
			return fmt.Errorf("%w: invalid IPv4 address %q", ErrInvalid, args.IPv4Address)
		}
	}
	c, err := e.lookup(args.Container)
	if err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.rec.Networks) == 0 && !c.rec.NetworksCleared {
		return fmt.Errorf("%w: container %s is on the %s network mode and cannot join another network", ErrInvalid, c.rec.Name, c.rec.Config.NetworkMode)
	}
	for _, a := range c.rec.Networks {
		if a.Network == n.ID {
			return fmt.Errorf("%w: endpoint with name %s already exists in network %s", ErrConflict, c.rec.Name, n.Name)
		}
	}
	a := netAttachment{Network: n.ID, Name: n.Name, Aliases: args.Aliases, IPv4: args.IPv4Address}
	if c.rc != nil && c.net != nil {
		cfg := network.EndpointConfig{
			ContainerID: c.rec.ID, ContainerName: c.rec.Name, Aliases: a.Aliases,
			NetNS:     fmt.Sprintf("/proc/%d/ns/net", c.rec.State.Pid),
			Interface: "eth" + strconv.Itoa(len(c.rec.Networks)),
		}
		if a.IPv4 != "" {
			cfg.IPv4, _ = netip.ParseAddr(a.IPv4)
		}
		ep, err := m.Connect(ctx, n.ID, cfg)
		if err != nil {
			return networkErr(err)
		}
		c.net.endpoints = append(c.net.endpoints, ep)
		if err := writeFileInPlace(c.dir+"/"+hostsFile, e.hostsFile(&c.rec, c.net.endpoints)); err != nil {
			return err
		}
	}
	c.rec.Networks = append(c.rec.Networks, a)
	if c.rec.NetworksCleared {
		c.rec.NetworksCleared = false
		c.rec.Config.NetworkMode = n.Name
	}
	e.events.publish(networkEvent("connect", n.ID, n.Name, c.rec.ID))
	return c.persist()
}

// NetworkDisconnect takes a container off a network.
func (e *Engine) NetworkDisconnect(ctx context.Context, args api.NetworkDisconnectArgs) error {
	m, err := e.networks()
	if err != nil {
		return err
	}
	n, err := m.Get(args.Network)
	if err != nil {
		return networkErr(err)
	}
	c, err := e.lookup(args.Container)
	if err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	i := slices.IndexFunc(c.rec.Networks, func(a netAttachment) bool { return a.Network == n.ID })
	if i < 0 {
		return fmt.Errorf("%w: container %s is not connected to network %s", ErrInvalid, c.rec.Name, n.Name)
	}
	if c.rc != nil && c.net != nil {
		if i == 0 && len(c.net.ports) > 0 && !args.Force {
			return fmt.Errorf("%w: container %s publishes ports through network %s; stop it first or use force", ErrConflict, c.rec.Name, n.Name)
		}
		if err := m.Disconnect(ctx, n.ID, c.rec.ID); err != nil && !args.Force {
			return networkErr(err)
		}
		c.net.endpoints = slices.DeleteFunc(c.net.endpoints, func(ep network.Endpoint) bool { return ep.NetworkID == n.ID })
		if err := writeFileInPlace(c.dir+"/"+hostsFile, e.hostsFile(&c.rec, c.net.endpoints)); err != nil {
			return err
		}
	}
	c.rec.Networks = slices.Delete(c.rec.Networks, i, i+1)
	if len(c.rec.Networks) == 0 {
		// Docker leaves such a container with no network at all.
		c.rec.Config.NetworkMode = container.NetworkNone
		c.rec.Config.PortBindings, c.rec.Config.PublishAllPorts = nil, false
		c.rec.NetworksCleared = true
	} else if i == 0 {
		c.rec.Config.NetworkMode = c.rec.Networks[0].Name
	}
	e.events.publish(networkEvent("disconnect", n.ID, n.Name, c.rec.ID))
	return c.persist()
}
