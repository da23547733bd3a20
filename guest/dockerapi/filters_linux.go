package dockerapi

import (
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"time"

	"github.com/vmbox/vmbox/guest/api"
)

// parseFilters reads the filters query parameter: JSON mapping each key
// to its values, as {"key":{"value":true}} (current clients) or
// {"key":["value"]} (older ones).
func parseFilters(raw string) (api.Filters, error) {
	f := api.Filters{}
	if raw == "" {
		return f, nil
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal([]byte(raw), &m); err != nil {
		return nil, fmt.Errorf("%w: invalid filters: %w", errBadRequest, err)
	}
	for k, v := range m {
		var set map[string]bool
		if err := json.Unmarshal(v, &set); err == nil {
			for val, on := range set {
				if on {
					f[k] = append(f[k], val)
				}
			}
			sort.Strings(f[k])
			continue
		}
		var list []string
		if err := json.Unmarshal(v, &list); err != nil {
			return nil, fmt.Errorf("%w: invalid filter %q: want a list or a set of values", errBadRequest, k)
		}
		f[k] = append(f[k], list...)
	}
	return f, nil
}

// matchLabelFilters applies the label filter (every value must hold).
func matchLabelFilters(labels map[string]string, f api.Filters) bool {
	return api.MatchLabels(labels, f["label"])
}

// untilFilter reads the until filter: Unix seconds, an RFC 3339 time or a
// duration before now ("24h").
func untilFilter(f api.Filters) (time.Time, error) {
	vals := f["until"]
	if len(vals) == 0 {
		return time.Time{}, nil
	}
	if len(vals) > 1 {
		return time.Time{}, fmt.Errorf("%w: more than one until filter", errBadRequest)
	}
	v := vals[0]
	if d, err := time.ParseDuration(v); err == nil {
		return time.Now().Add(-d), nil
	}
	if t, err := time.Parse(time.RFC3339Nano, v); err == nil {
		return t, nil
	}
	if secs, err := strconv.ParseFloat(v, 64); err == nil {
		return time.Unix(0, int64(secs*1e9)), nil
	}
	return time.Time{}, fmt.Errorf("%w: invalid until filter %q", errBadRequest, v)
}

// anyOf applies one filter key: true when the key is not given, or when
// one of its values is ok.
func anyOf(f api.Filters, key string, ok func(string) bool) bool {
	vals := f[key]
	if len(vals) == 0 {
		return true
	}
	for _, v := range vals {
		if ok(v) {
			return true
		}
	}
	return false
}
