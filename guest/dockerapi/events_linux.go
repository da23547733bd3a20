package dockerapi

import (
	"encoding/json"
	"net/http"
	"strings"
	"time"

	"github.com/moby/moby/api/types/events"

	"github.com/vmbox/vmbox/guest/api"
	"github.com/vmbox/vmbox/guest/engine"
)

// eventMessage is an event as the API streams it: the current fields and
// the legacy ones (status, id, from) that older clients such as
// docker-compose 1.29 still read.
type eventMessage struct {
	Status string `json:"status,omitempty"`
	ID     string `json:"id,omitempty"`
	From   string `json:"from,omitempty"`
	events.Message
}

func message(ev engine.Event) eventMessage {
	m := eventMessage{Message: events.Message{
		Type: events.Type(ev.Type), Action: events.Action(ev.Action),
		Actor: events.Actor{ID: ev.ID, Attributes: ev.Attributes},
		Scope: "local", Time: ev.Time.Unix(), TimeNano: ev.Time.UnixNano(),
	}}
	if ev.Type == "container" {
		m.Status, m.ID, m.From = ev.Action, ev.ID, ev.Attributes["image"]
	}
	return m
}

// matchEvent applies Docker's event filters: type, event (action),
// container (ID, ID prefix or name), image, network, label.
func matchEvent(ev engine.Event, f api.Filters) bool {
	idOrName := func(v string) bool {
		return strings.HasPrefix(ev.ID, v) || ev.Attributes["name"] == v
	}
	return anyOf(f, "type", func(v string) bool { return v == ev.Type }) &&
		anyOf(f, "event", func(v string) bool { return v == ev.Action }) &&
		anyOf(f, "container", func(v string) bool { return ev.Type == "container" && idOrName(v) }) &&
		anyOf(f, "image", func(v string) bool {
			return ev.Type == "image" && idOrName(v) || ev.Attributes["image"] == v
		}) &&
		anyOf(f, "network", func(v string) bool { return ev.Type == "network" && idOrName(v) }) &&
		api.MatchLabels(ev.Attributes, f["label"])
}

// eventsStream answers GET /events: the kept events since since, then
// the new ones as they happen, until until (or the client leaves).
func (s *Server) eventsStream(w http.ResponseWriter, r *http.Request) error {
	filters, err := parseFilters(r.URL.Query().Get("filters"))
	if err != nil {
		return err
	}
	if err := filters.Validate("type", "event", "container", "image", "network", "label"); err != nil {
		return &apiError{code: http.StatusBadRequest, msg: errorMessage(err)}
	}
	since, err := unixParam(r, "since")
	if err != nil {
		return err
	}
	until, err := unixParam(r, "until")
	if err != nil {
		return err
	}
	past, live, cancel := s.eng.Subscribe(since)
	defer cancel()
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	out := flushing(w)
	if f, ok := w.(http.Flusher); ok {
		f.Flush()
	}
	enc := json.NewEncoder(out)
	send := func(ev engine.Event) bool {
		if !matchEvent(ev, filters) {
			return true
		}
		return enc.Encode(message(ev)) == nil
	}
	for _, ev := range past {
		if !until.IsZero() && ev.Time.After(until) {
			return nil
		}
		if !send(ev) {
			return nil
		}
	}
	var deadline <-chan time.Time
	if !until.IsZero() {
		d := time.Until(until)
		if d <= 0 {
			return nil
		}
		t := time.NewTimer(d)
		defer t.Stop()
		deadline = t.C
	}
	for {
		select {
		case ev, ok := <-live:
			if !ok || !send(ev) {
				return nil
			}
		case <-deadline:
			return nil
		case <-r.Context().Done():
			return nil
		}
	}
}
