//go:build darwin && cgo

package vz

import (
	"context"
	"errors"
)

// Placeholder until the QMP client lands on this branch; the shutdown
// escalation then goes on to Kill.
func (v *VM) RequestStop(context.Context) error { return errors.ErrUnsupported }
func (v *VM) ForceStop(context.Context) error   { return errors.ErrUnsupported }
