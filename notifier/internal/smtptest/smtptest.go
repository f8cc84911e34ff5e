// Package smtptest is a minimal SMTP server (RFC 5321: EHLO, AUTH PLAIN,
// MAIL, RCPT, DATA, RSET, NOOP, QUIT) on loopback for tests: a real
// listener speaking the real protocol to net/smtp, keeping what it accepts.
package smtptest

import (
	"bufio"
	"encoding/base64"
	"net"
	"net/textproto"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
)

// Mail is one accepted message.
type Mail struct {
	From string
	To   []string
	Data string // the message as sent, dot-unstuffed, lines ending in \n
	User string // the user of AUTH PLAIN, if any
	Pass string
}

// Server is a running SMTP server.
type Server struct {
	Addr string
	// Received gets every accepted mail (buffered).
	Received chan Mail
	// failData makes the next n DATA commands fail with 451.
	failData atomic.Int32

	ln net.Listener
	wg sync.WaitGroup
}

// Start runs a server on 127.0.0.1 until the test ends.
func Start(t testing.TB) *Server {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &Server{Addr: ln.Addr().String(), Received: make(chan Mail, 100), ln: ln}
	s.wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s.wg.Go(func() { s.serve(c) })
		}
	})
	t.Cleanup(func() { ln.Close(); s.wg.Wait() })
	return s
}

// FailData makes the next n messages fail at DATA with a temporary error.
func (s *Server) FailData(n int) { s.failData.Store(int32(n)) }

func (s *Server) serve(c net.Conn) {
	defer c.Close()
	tp := textproto.NewConn(c)
	r := textproto.NewReader(bufio.NewReader(c))
	reply := func(lines ...string) bool {
		for _, l := range lines {
			if err := tp.PrintfLine("%s", l); err != nil {
				return false
			}
		}
		return true
	}
	if !reply("220 smtptest ESMTP ready") {
		return
	}
	var m Mail
	for {
		line, err := r.ReadLine()
		if err != nil {
			return
		}
		verb, arg, _ := strings.Cut(line, " ")
		var ok bool
		switch strings.ToUpper(verb) {
		case "EHLO":
			ok = reply("250-smtptest", "250-AUTH PLAIN", "250 8BITMIME")
		case "HELO", "NOOP":
			ok = reply("250 ok")
		case "AUTH":
			mech, resp, _ := strings.Cut(arg, " ")
			raw, err := base64.StdEncoding.DecodeString(resp)
			parts := strings.Split(string(raw), "\x00")
			if !strings.EqualFold(mech, "PLAIN") || err != nil || len(parts) != 3 {
				ok = reply("504 only AUTH PLAIN with an initial response")
				continue
			}
			m.User, m.Pass = parts[1], parts[2]
			ok = reply("235 authenticated")
		case "MAIL":
			m.From = address(arg)
			m.To = nil
			ok = reply("250 ok")
		case "RCPT":
			m.To = append(m.To, address(arg))
			ok = reply("250 ok")
		case "DATA":
			if !reply("354 end with <CRLF>.<CRLF>") {
				return
			}
			data, err := r.ReadDotBytes()
			if err != nil {
				return
			}
			if s.failData.Add(-1) >= 0 {
				ok = reply("451 try again later")
				continue
			}
			m.Data = string(data)
			s.Received <- m
			m = Mail{User: m.User, Pass: m.Pass}
			ok = reply("250 queued")
		case "RSET":
			m = Mail{User: m.User, Pass: m.Pass}
			ok = reply("250 ok")
		case "QUIT":
			reply("221 bye")
			return
		default:
			ok = reply("502 not implemented")
		}
		if !ok {
			return
		}
	}
}

// address extracts a@b from FROM:<a@b> or TO:<a@b> with optional parameters.
func address(arg string) string {
	if i := strings.IndexByte(arg, '<'); i >= 0 {
		if j := strings.IndexByte(arg[i:], '>'); j >= 0 {
			return arg[i+1 : i+j]
		}
	}
	return arg
}
