package api

import (
	"fmt"
	"strings"
)

// Filters are Docker's list filters by key: the values of one key are
// alternatives (except label's, which must all hold), and every key must
// hold.
type Filters map[string][]string

// ContainerFilterKeys are the filters a container list takes, as Docker's.
func ContainerFilterKeys() []string {
	return []string{"id", "name", "label", "status", "ancestor", "exited", "network"}
}

// ParseFilters reads --filter KEY=VALUE values, accepting only keys.
func ParseFilters(values []string, keys ...string) (Filters, error) {
	if len(values) == 0 {
		return nil, nil
	}
	f := Filters{}
	for _, kv := range values {
		key, value, ok := strings.Cut(kv, "=")
		if !ok {
			return nil, fmt.Errorf("bad format of filter (expected name=value): %s", kv)
		}
		f[strings.ToLower(key)] = append(f[strings.ToLower(key)], value)
	}
	return f, f.Validate(keys...)
}

// Validate refuses a key that is not one of keys, in Docker's words.
func (f Filters) Validate(keys ...string) error {
	for key := range f {
		found := false
		for _, k := range keys {
			found = found || k == key
		}
		if !found {
			return fmt.Errorf("invalid filter '%s'", key)
		}
	}
	return nil
}

// MatchLabels tells whether every "KEY" or "KEY=VALUE" of want holds in
// labels.
func MatchLabels(labels map[string]string, want []string) bool {
	for _, w := range want {
		key, value, hasValue := strings.Cut(w, "=")
		got, ok := labels[key]
		if !ok || (hasValue && got != value) {
			return false
		}
	}
	return true
}
