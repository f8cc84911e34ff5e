package devenv

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync/atomic"
	"time"
)

// probeTimeout bounds one MQTT probe when ctx has no earlier deadline.
const probeTimeout = 5 * time.Second

// probeSeq makes probe client IDs unique within this process, so two probes
// never take over each other's session.
var probeSeq atomic.Uint64

// ProbeMQTT connects to the MQTT broker at addr (host:port) with MQTT 3.1.1,
// a clean session and a throwaway client ID, then disconnects. It returns nil
// once the broker accepted the connection: the broker is not only listening
// but serving MQTT. Works against Mosquitto and NATS' MQTT listener.
func ProbeMQTT(ctx context.Context, addr string) error {
	return probeMQTT(ctx, addr, nil)
}

// probeSecureMQTT is ProbeMQTT over TLS with tc, without credentials: a
// broker that answers "not authorized" serves MQTT and counts as ready.
func probeSecureMQTT(ctx context.Context, addr string, tc *tls.Config) error {
	return probeMQTT(ctx, addr, tc)
}

func probeMQTT(ctx context.Context, addr string, tc *tls.Config) error {
	ctx, cancel := context.WithTimeout(ctx, probeTimeout)
	defer cancel()
	var conn net.Conn
	var err error
	if tc != nil {
		d := tls.Dialer{Config: tc}
		conn, err = d.DialContext(ctx, "tcp", addr)
	} else {
		var d net.Dialer
		conn, err = d.DialContext(ctx, "tcp", addr)
	}
	if err != nil {
		return fmt.Errorf("mqtt probe %s: %w", addr, err)
	}
	defer conn.Close()
	deadline, _ := ctx.Deadline()
	if err := conn.SetDeadline(deadline); err != nil {
		return fmt.Errorf("mqtt probe %s: %w", addr, err)
	}

	clientID := fmt.Sprintf("devenv-probe-%d-%d", os.Getpid(), probeSeq.Add(1))
	if _, err := conn.Write(mqttConnect(clientID)); err != nil {
		return fmt.Errorf("mqtt probe %s: send CONNECT: %w", addr, err)
	}
	var connack [4]byte
	if _, err := io.ReadFull(conn, connack[:]); err != nil {
		return fmt.Errorf("mqtt probe %s: read CONNACK: %w", addr, err)
	}
	if connack[0] != 0x20 || connack[1] != 0x02 {
		return fmt.Errorf("mqtt probe %s: expected CONNACK, got % x", addr, connack)
	}
	if rc := connack[3]; rc != 0 && !(tc != nil && (rc == 4 || rc == 5)) {
		return fmt.Errorf("mqtt probe %s: connection refused: %w", addr, connackError(rc))
	}
	// DISCONNECT, so the broker does not log an unexpected disconnection.
	_, _ = conn.Write([]byte{0xe0, 0x00})
	return nil
}

// mqttConnect encodes an MQTT 3.1.1 CONNECT packet with a clean session and
// no credentials.
func mqttConnect(clientID string) []byte {
	body := []byte{
		0x00, 0x04, 'M', 'Q', 'T', 'T', // protocol name
		0x04,       // protocol level: 3.1.1
		0x02,       // flags: clean session
		0x00, 0x0a, // keep alive: 10 s
		byte(len(clientID) >> 8), byte(len(clientID)),
	}
	body = append(body, clientID...)
	packet := []byte{0x10}
	for n := len(body); ; {
		// Remaining length: 7 bits per byte, high bit set when more follow.
		b := byte(n % 128)
		n /= 128
		if n > 0 {
			b |= 0x80
		}
		packet = append(packet, b)
		if n == 0 {
			break
		}
	}
	return append(packet, body...)
}

// connackError names an MQTT 3.1.1 CONNACK return code.
func connackError(rc byte) error {
	switch rc {
	case 1:
		return errors.New("unacceptable protocol version")
	case 2:
		return errors.New("identifier rejected")
	case 3:
		return errors.New("server unavailable")
	case 4:
		return errors.New("bad user name or password")
	case 5:
		return errors.New("not authorized")
	default:
		return fmt.Errorf("return code %d", rc)
	}
}
