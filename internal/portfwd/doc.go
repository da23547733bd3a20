// Package portfwd carries published container ports from one machine to
// another: a Forwarder listens on the host's addresses (TCP and UDP) and
// sends every connection, or every UDP flow, over a fresh stream to a
// Gateway, which checks the stream's token, dials the target it names and
// joins the two. Between the host and a VM the stream is a connection to
// the agent's forwarding port; on one machine LocalDialer joins the two
// halves in-process.
//
// A stream starts with a header (see WriteHeader) and the gateway's one
// status byte. TCP bytes then pass unchanged, half-closes included; UDP
// datagrams pass as frames of a two-byte big-endian length and the
// payload.
package portfwd
