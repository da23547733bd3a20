package dockerapi

import (
	"net/http"
	"time"

	"github.com/moby/moby/api/types/volume"

	"github.com/vmbox/vmbox/guest/api"
)

func volumeResponse(v api.Volume) volume.Volume {
	return volume.Volume{Name: v.Name, Driver: v.Driver, Mountpoint: v.Mountpoint, CreatedAt: v.CreatedAt.Format(time.RFC3339),
		Labels: nonNilMap(v.Labels), Scope: v.Scope, Options: nonNilMap(v.Options)}
}

func (s *Server) volumeList(w http.ResponseWriter, r *http.Request) error {
	filters, err := parseFilters(r.URL.Query().Get("filters"))
	if err != nil {
		return err
	}
	vols, err := s.eng.VolumeList(filters)
	if err != nil {
		return err
	}
	out := volume.ListResponse{Volumes: []volume.Volume{}, Warnings: []string{}}
	for _, v := range vols {
		out.Volumes = append(out.Volumes, volumeResponse(v))
	}
	return writeJSON(w, http.StatusOK, out)
}

func (s *Server) volumeCreate(w http.ResponseWriter, r *http.Request) error {
	var req volume.CreateRequest
	if err := decodeBody(r, &req); err != nil {
		return err
	}
	v, err := s.eng.VolumeCreate(api.VolumeCreateArgs{Name: req.Name, Driver: req.Driver, DriverOpts: req.DriverOpts, Labels: req.Labels})
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusCreated, volumeResponse(v))
}

func (s *Server) volumeInspect(w http.ResponseWriter, r *http.Request) error {
	v, err := s.eng.VolumeInspect(r.PathValue("name"))
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, volumeResponse(v))
}

func (s *Server) volumeDelete(w http.ResponseWriter, r *http.Request) error {
	if err := s.eng.VolumeRemove(r.PathValue("name"), boolParam(r, "force")); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (s *Server) volumePrune(w http.ResponseWriter, r *http.Request) error {
	filters, err := parseFilters(r.URL.Query().Get("filters"))
	if err != nil {
		return err
	}
	rep, err := s.eng.VolumePrune(false, filters)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, volume.PruneReport{VolumesDeleted: nonNil(rep.VolumesDeleted), SpaceReclaimed: rep.SpaceReclaimed})
}
