package main

import (
	"bytes"
	"io"
	"net"
	"sync/atomic"
	"testing"
	"time"
)

// countingConn counts the writes that reach the socket.
type countingConn struct {
	net.Conn
	writes atomic.Int64
}

func (c *countingConn) Write(p []byte) (int, error) {
	c.writes.Add(1)
	return c.Conn.Write(p)
}

// loopback returns a buffered client connection over a counting one, and
// the server's end.
func loopback(t *testing.T) (*bufferedConn, *countingConn, net.Conn) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := l.Accept()
		if err == nil {
			accepted <- c
		}
		close(accepted)
	}()
	raw, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	server := <-accepted
	if server == nil {
		t.Fatal("no connection accepted")
	}
	t.Cleanup(func() { raw.Close(); server.Close() })
	cc := &countingConn{Conn: raw}
	return newBufferedConn(cc), cc, server
}

// A burst of small packets (PUBACKs) leaves in one write, in order, within
// the write delay; a lone packet is not held back longer.
func TestBufferedConnGathersWrites(t *testing.T) {
	c, cc, server := loopback(t)
	var want bytes.Buffer
	for i := range 200 {
		p := []byte{0x40, 0x02, byte(i >> 8), byte(i)} // a PUBACK
		want.Write(p)
		if n, err := c.Write(p); n != 4 || err != nil {
			t.Fatalf("write %d: %d, %v", i, n, err)
		}
	}
	got := make([]byte, want.Len())
	_ = server.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.ReadFull(server, got); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want.Bytes()) {
		t.Fatal("the bytes arrived changed or out of order")
	}
	if n := cc.writes.Load(); n > 20 { // one, unless the machine stalls the loop past the delay
		t.Fatalf("200 packets took %d writes to the socket; want them gathered", n)
	}

	began := time.Now()
	if _, err := c.Write([]byte{0xc0, 0x00}); err != nil { // a PINGREQ, alone
		t.Fatal(err)
	}
	if _, err := io.ReadFull(server, got[:2]); err != nil {
		t.Fatal(err)
	}
	if waited := time.Since(began); waited > time.Second {
		t.Fatalf("a lone packet waited %s", waited)
	}
}

// Close sends what is buffered first; a write after a failed flush fails.
func TestBufferedConnFlushesOnCloseAndFailsAfterAnError(t *testing.T) {
	c, _, server := loopback(t)
	if _, err := c.Write([]byte{0xe0, 0x00}); err != nil { // a DISCONNECT
		t.Fatal(err)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	_ = server.SetReadDeadline(time.Now().Add(5 * time.Second))
	if b, err := io.ReadAll(server); err != nil || !bytes.Equal(b, []byte{0xe0, 0x00}) {
		t.Fatalf("the server read %x, %v; want the DISCONNECT, then the end", b, err)
	}
	if _, err := c.Write([]byte{1}); err == nil {
		t.Fatal("a write after Close succeeded")
	}

	c, cc, _ := loopback(t)
	_ = cc.Conn.Close() // the socket fails under the buffer
	if _, err := c.Write([]byte{0x40, 0x02, 0, 1}); err != nil {
		t.Fatalf("a buffered write failed at once: %v", err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		if _, err := c.Write([]byte{0x40, 0x02, 0, 2}); err != nil {
			break // the failed flush is reported to the next write
		}
		if time.Now().After(deadline) {
			t.Fatal("writes kept succeeding on a closed socket")
		}
		time.Sleep(time.Millisecond)
	}
}
