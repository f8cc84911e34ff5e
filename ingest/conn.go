package main

import (
	"bufio"
	"cmp"
	"context"
	"crypto/tls"
	"net"
	"net/url"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"golang.org/x/net/proxy"
)

// dialBroker opens the connection to the broker as paho would (a proxy from
// the environment, TLS for the TLS schemes) and reads it through a buffer:
// paho reads every packet's fixed header and each byte of its length with a
// read of its own, one read(2) each on a plain connection (the cost:
// docs/performance.md, "Figures behind the code").
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
	return &bufferedConn{Conn: conn, r: bufio.NewReaderSize(conn, 16<<10)}, nil
}

// bufferedConn is a connection whose reads go through r.
type bufferedConn struct {
	net.Conn
	r *bufio.Reader
}

func (c *bufferedConn) Read(p []byte) (int, error) { return c.r.Read(p) }
