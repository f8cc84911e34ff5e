package main

import (
	"bufio"
	"cmp"
	"context"
	"crypto/tls"
	"net"
	"net/url"
	"sync"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"golang.org/x/net/proxy"
)

// dialBroker opens the connection to the broker as paho would (a proxy from
// the environment, TLS for the TLS schemes) and reads and writes it through
// buffers: paho reads every packet's fixed header and each byte of its
// length with a read of its own, and writes every packet (a PUBACK for each
// message the bridge acknowledges) with a write of its own, one system call
// each on a plain connection (the cost: docs/performance.md, "Figures behind
// the code").
func dialBroker(uri *url.URL, o mqtt.ClientOptions) (net.Conn, error) {
	conn, err := proxy.FromEnvironmentUsing(o.Dialer).Dial("tcp", uri.Host)
	if err != nil {
		return nil, err
	}
	if tlsSchemes[uri.Scheme] {
		tc := &tls.Config{}
		if o.TLSConfig != nil {
			tc = o.TLSConfig.Clone()
		}
		if tc.ServerName == "" {
			tc.ServerName = uri.Hostname()
		}
		ctx, cancel := context.WithTimeout(context.Background(), cmp.Or(o.ConnectTimeout, 30*time.Second))
		defer cancel()
		tconn := tls.Client(conn, tc)
		if err := tconn.HandshakeContext(ctx); err != nil {
			_ = conn.Close()
			return nil, err
		}
		conn = tconn
	}
	return newBufferedConn(conn), nil
}

// writeDelay is the longest a written packet waits in bufferedConn before it
// is sent: long enough to gather the acknowledgements of a burst into one
// write(2), far shorter than anything the broker waits for (an
// acknowledgement only frees its in-flight slot sooner).
const writeDelay = time.Millisecond

// bufferedConn is a connection whose reads go through r and whose writes
// are gathered in w: the first byte written to an empty buffer arms a flush
// writeDelay later, and a full buffer is written at once (bufio), so bytes
// leave in the order written and none waits longer than writeDelay. A
// failed flush fails every later write, as a failed write would have.
type bufferedConn struct {
	net.Conn
	r *bufio.Reader

	mu    sync.Mutex
	w     *bufio.Writer
	armed bool
	err   error
}

func newBufferedConn(conn net.Conn) *bufferedConn {
	return &bufferedConn{Conn: conn, r: bufio.NewReaderSize(conn, 16<<10), w: bufio.NewWriterSize(conn, 16<<10)}
}

func (c *bufferedConn) Read(p []byte) (int, error) { return c.r.Read(p) }

func (c *bufferedConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err != nil {
		return 0, c.err
	}
	n, err := c.w.Write(p)
	if err != nil {
		c.err = err
		return n, err
	}
	if !c.armed && c.w.Buffered() > 0 {
		c.armed = true
		time.AfterFunc(writeDelay, c.flush)
	}
	return n, nil
}

// flush writes what is buffered.
func (c *bufferedConn) flush() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.armed = false
	if c.err == nil {
		c.err = c.w.Flush()
	}
}

// Close sends what is buffered (a DISCONNECT, say), then closes.
func (c *bufferedConn) Close() error {
	c.mu.Lock()
	if c.err == nil {
		_ = c.w.Flush()
		c.err = net.ErrClosed
	}
	c.mu.Unlock()
	return c.Conn.Close()
}
