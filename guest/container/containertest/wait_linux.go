package containertest

import (
	"crypto/rand"
	"encoding/hex"
	"io"
	"testing"
	"time"
)

// Patience bounds each wait of the container and engine tests. It asserts
// no speed: it turns a lost signal or a missed output, which would
// otherwise hang the whole test binary, into one failed test.
const Patience = 60 * time.Second

// ClosedWithin reports whether done is closed within Patience.
func ClosedWithin(done <-chan struct{}) bool {
	timer := time.NewTimer(Patience)
	defer timer.Stop()
	select {
	case <-done:
		return true
	case <-timer.C:
		return false
	}
}

// ReadAll reads r to its end, failing the test (and closing r) when the
// end does not come within Patience. what names r in the failure.
func ReadAll(t testing.TB, r io.ReadCloser, what string) string {
	t.Helper()
	var b []byte
	done := make(chan struct{})
	go func() { b, _ = io.ReadAll(r); close(done) }()
	if !ClosedWithin(done) {
		r.Close()
		<-done
		t.Fatalf("%s: no end after %v, read %q", what, Patience, b)
	}
	return string(b)
}

// ReadFull reads exactly n bytes from r, failing the test (and closing r)
// when they do not come within Patience.
func ReadFull(t testing.TB, r io.ReadCloser, n int, what string) string {
	t.Helper()
	buf := make([]byte, n)
	var got int
	var err error
	done := make(chan struct{})
	go func() { got, err = io.ReadFull(r, buf); close(done) }()
	if !ClosedWithin(done) {
		r.Close()
		<-done
		t.Fatalf("%s: %q after %v, want %d bytes", what, buf[:got], Patience, n)
	}
	if err != nil {
		t.Fatalf("%s: %q: %v", what, buf[:got], err)
	}
	return string(buf)
}

// RandHex returns n random bytes in hex: names of cgroups, containers and
// registry repositories that concurrent test runs cannot share.
func RandHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}
