package qemu

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"path/filepath"
	"time"
)

// QMPSocket is the path of the QMP socket of the QEMU that runs the
// instance in instanceDir.
func QMPSocket(instanceDir string) string { return filepath.Join(instanceDir, QMPSocketName) }

// QMPError is an error reply of QEMU's to a QMP command.
type QMPError struct {
	Command string
	Class   string
	Desc    string
}

func (e *QMPError) Error() string {
	return fmt.Sprintf("qmp %s: %s: %s", e.Command, e.Class, e.Desc)
}

// QMP runs one command on the QMP socket at socketPath and returns its
// reply's "return" value. args is the command's arguments (nil for
// none). It connects, reads QEMU's greeting, negotiates capabilities, runs
// the command and disconnects: QEMU's QMP socket serves one client at a
// time, so a connection held open would lock out every other caller.
// ctx bounds all of it. An error reply is a *QMPError. For "quit", QEMU
// closing the connection instead of answering counts as success.
func QMP(ctx context.Context, socketPath, command string, args any) (json.RawMessage, error) {
	fail := func(err error) (json.RawMessage, error) {
		return nil, fmt.Errorf("qmp %s on %s: %w", command, socketPath, err)
	}
	path, cleanup, err := socketAlias(socketPath)
	if err != nil {
		return fail(err)
	}
	var d net.Dialer
	c, err := d.DialContext(ctx, "unix", path)
	cleanup()
	if err != nil {
		return fail(err)
	}
	defer c.Close()
	// A cancelled ctx interrupts a blocked read or write.
	stop := context.AfterFunc(ctx, func() { c.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	s := &qmpSession{c: c, dec: json.NewDecoder(c)}
	var greeting struct {
		QMP *json.RawMessage `json:"QMP"`
	}
	if err := s.dec.Decode(&greeting); err != nil {
		return fail(s.ctxErr(ctx, fmt.Errorf("read greeting: %w", err)))
	}
	if greeting.QMP == nil {
		return fail(errors.New("no QMP greeting"))
	}
	if _, err := s.execute("qmp_capabilities", nil); err != nil {
		return fail(s.ctxErr(ctx, err))
	}
	ret, err := s.execute(command, args)
	if err != nil {
		if command == "quit" && errors.Is(err, io.EOF) {
			return nil, nil
		}
		var qerr *QMPError
		if errors.As(err, &qerr) {
			return nil, err
		}
		return fail(s.ctxErr(ctx, err))
	}
	return ret, nil
}

type qmpSession struct {
	c   net.Conn
	dec *json.Decoder
}

// ctxErr prefers ctx's error to the one the interrupted I/O returned.
func (s *qmpSession) ctxErr(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return fmt.Errorf("%w (%v)", ctx.Err(), err)
	}
	return err
}

// execute sends one command and reads messages until its reply, skipping
// the asynchronous events QEMU sends at any time (STOP, RESUME, ...).
func (s *qmpSession) execute(command string, args any) (json.RawMessage, error) {
	req := struct {
		Execute   string `json:"execute"`
		Arguments any    `json:"arguments,omitempty"`
	}{command, args}
	b, err := json.Marshal(req)
	if err != nil {
		return nil, fmt.Errorf("encode %s: %w", command, err)
	}
	if _, err := s.c.Write(append(b, '\n')); err != nil {
		return nil, fmt.Errorf("send %s: %w", command, err)
	}
	for {
		var msg struct {
			Return *json.RawMessage `json:"return"`
			Error  *struct {
				Class string `json:"class"`
				Desc  string `json:"desc"`
			} `json:"error"`
			Event string `json:"event"`
		}
		if err := s.dec.Decode(&msg); err != nil {
			return nil, fmt.Errorf("read reply to %s: %w", command, err)
		}
		switch {
		case msg.Return != nil:
			return *msg.Return, nil
		case msg.Error != nil:
			return nil, &QMPError{Command: command, Class: msg.Error.Class, Desc: msg.Error.Desc}
		}
		// An event, or something this client does not know: skip it.
	}
}
