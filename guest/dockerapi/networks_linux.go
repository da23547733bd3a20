package dockerapi

import (
	"fmt"
	"net/http"
	"strings"

	"github.com/moby/moby/api/types/network"

	"github.com/vmbox/vmbox/guest/api"
)

// The engine's network types already have Docker's JSON shape
// (api.NetworkResource): they are answered as they are.

func (s *Server) networkList(w http.ResponseWriter, r *http.Request) error {
	filters, err := parseFilters(r.URL.Query().Get("filters"))
	if err != nil {
		return err
	}
	if err := filters.Validate("name", "id", "label", "driver", "type", "scope"); err != nil {
		return fmt.Errorf("%w: %w", errBadRequest, err)
	}
	nets, err := s.eng.NetworkList()
	if err != nil {
		return err
	}
	out := []api.NetworkResource{}
	for _, n := range nets {
		if matchNetwork(n, filters) {
			out = append(out, n)
		}
	}
	return writeJSON(w, http.StatusOK, out)
}

// matchNetwork applies Docker's network filters: name (substring), id
// (prefix), label, driver, type (builtin or custom) and scope.
func matchNetwork(n api.NetworkResource, f api.Filters) bool {
	builtin := n.Name == "bridge" || n.Name == "host" || n.Name == "none"
	return anyOf(f, "name", func(v string) bool { return strings.Contains(n.Name, v) }) &&
		anyOf(f, "id", func(v string) bool { return strings.HasPrefix(n.ID, v) }) &&
		anyOf(f, "driver", func(v string) bool { return n.Driver == v }) &&
		anyOf(f, "scope", func(v string) bool { return n.Scope == v }) &&
		anyOf(f, "type", func(v string) bool { return v == "builtin" && builtin || v == "custom" && !builtin }) &&
		api.MatchLabels(n.Labels, f["label"])
}

func (s *Server) networkInspect(w http.ResponseWriter, r *http.Request) error {
	n, err := s.eng.NetworkInspect(r.PathValue("id"))
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, n)
}

func (s *Server) networkCreate(w http.ResponseWriter, r *http.Request) error {
	var req network.CreateRequest
	if err := decodeBody(r, &req); err != nil {
		return err
	}
	if req.Name == "" {
		return fmt.Errorf("%w: network name is required", errBadRequest)
	}
	if req.EnableIPv6 != nil && *req.EnableIPv6 {
		return fmt.Errorf("%w: IPv6 networks are not supported by vmbox", errBadRequest)
	}
	args := api.NetworkCreateArgs{Name: req.Name, Driver: req.Driver, Internal: req.Internal, Labels: req.Labels, Options: req.Options}
	if req.IPAM != nil {
		if len(req.IPAM.Config) > 1 {
			return fmt.Errorf("%w: one IPAM configuration (subnet) per network is supported", errBadRequest)
		}
		if len(req.IPAM.Config) == 1 {
			c := req.IPAM.Config[0]
			if c.Subnet.IsValid() {
				args.Subnet = c.Subnet.String()
			}
			if c.Gateway.IsValid() {
				args.Gateway = c.Gateway.String()
			}
			if c.IPRange.IsValid() {
				args.IPRange = c.IPRange.String()
			}
		}
	}
	reply, err := s.eng.NetworkCreate(r.Context(), args)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusCreated, network.CreateResponse{ID: reply.ID, Warning: reply.Warning})
}

func (s *Server) networkDelete(w http.ResponseWriter, r *http.Request) error {
	if err := s.eng.NetworkRemove(r.Context(), r.PathValue("id")); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (s *Server) networkConnect(w http.ResponseWriter, r *http.Request) error {
	var req network.ConnectRequest
	if err := decodeBody(r, &req); err != nil {
		return err
	}
	args := api.NetworkConnectArgs{Network: r.PathValue("id"), Container: req.Container}
	if ep := req.EndpointConfig; ep != nil {
		args.Aliases = ep.Aliases
		if ep.IPAMConfig != nil && ep.IPAMConfig.IPv4Address.IsValid() {
			args.IPv4Address = ep.IPAMConfig.IPv4Address.String()
		}
	}
	if err := s.eng.NetworkConnect(r.Context(), args); err != nil {
		return err
	}
	w.WriteHeader(http.StatusOK)
	return nil
}

func (s *Server) networkDisconnect(w http.ResponseWriter, r *http.Request) error {
	var req network.DisconnectRequest
	if err := decodeBody(r, &req); err != nil {
		return err
	}
	if err := s.eng.NetworkDisconnect(r.Context(), api.NetworkDisconnectArgs{Network: r.PathValue("id"), Container: req.Container, Force: req.Force}); err != nil {
		return err
	}
	w.WriteHeader(http.StatusOK)
	return nil
}

func (s *Server) networkPrune(w http.ResponseWriter, r *http.Request) error {
	reply, err := s.eng.NetworkPrune(r.Context())
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, network.PruneReport{NetworksDeleted: nonNil(reply.NetworksDeleted)})
}
