package main

import (
	"strings"
	"sync"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/eclipse/paho.mqtt.golang/packets"
)

// outboundKeyPrefix is how paho names an outgoing packet in its store
// ("o.<packet id>"); the constant is unexported in paho.
const outboundKeyPrefix = "o."

// message is one PUBLISH of the run: an original or its duplicate.
type message struct {
	device int
	seq    uint64
	dup    bool
	sentAt time.Time
	// err is the error paho's token reported for a message that is still in
	// the store, so it may yet be acknowledged after a reconnect.
	err error
}

// ackStore is paho's ordered in-memory store that also tells which message
// a PUBACK (QoS 1) or PUBCOMP (QoS 2) acknowledged.
//
// Paho's tokens cannot: when the client reconnects it resends the stored
// messages under new tokens and completes the caller's original tokens
// without an error (messageIds.claimID), before the broker acknowledged
// anything. The store is the one place that sees the truth, because paho
// deletes a message's entry exactly when its acknowledgement arrives.
//
// The ordered store (not paho's default MemoryStore, whose All walks a map)
// makes a reconnect resend messages in publish order, which keeps each
// device's seq order on the wire. The generator never connects with a
// clean session, so paho never Resets the store behind its back.
type ackStore struct {
	*mqtt.OrderedMemoryStore

	mu      sync.Mutex
	next    *message // set by expect, taken by the Put that Publish makes
	taken   bool
	pending map[string]*message
	closed  bool
	onAck   func(m *message, at time.Time)
}

func newAckStore(onAck func(*message, time.Time)) *ackStore {
	return &ackStore{
		OrderedMemoryStore: mqtt.NewOrderedMemoryStore(),
		pending:            make(map[string]*message),
		onAck:              onAck,
	}
}

// expect names the message the next outbound PUBLISH put in the store
// belongs to. Paho's Publish stores the packet synchronously, so the
// publisher calls expect, Publish, then stored.
func (s *ackStore) expect(m *message) {
	s.mu.Lock()
	s.next, s.taken = m, false
	s.mu.Unlock()
}

// stored reports whether Publish put the expected message in the store:
// false means paho refused it up front (not connected, no packet id) and it
// can never be sent.
func (s *ackStore) stored() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	taken := s.taken
	s.next, s.taken = nil, false
	return taken
}

// Put implements mqtt.Store.
func (s *ackStore) Put(key string, p packets.ControlPacket) {
	if _, ok := p.(*packets.PublishPacket); ok && strings.HasPrefix(key, outboundKeyPrefix) {
		s.mu.Lock()
		if s.next != nil && !s.taken {
			s.pending[key] = s.next
			s.taken = true
		}
		s.mu.Unlock()
	}
	s.OrderedMemoryStore.Put(key, p)
}

// Del implements mqtt.Store. Paho deletes an outbound key when the broker
// acknowledges it (PUBACK for QoS 1, PUBCOMP for QoS 2).
func (s *ackStore) Del(key string) {
	now := time.Now()
	s.OrderedMemoryStore.Del(key)
	s.mu.Lock()
	defer s.mu.Unlock()
	// Under the lock, so an acknowledgement is either counted before finish
	// or not at all, never lost in between.
	if m, ok := s.pending[key]; ok && !s.closed {
		delete(s.pending, key)
		s.onAck(m, now)
	}
}

// finish stops tracking and returns the messages still unacknowledged.
// Acknowledgements that arrive later are ignored, so the report built from
// the returned set stays consistent.
func (s *ackStore) finish() []*message {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	left := make([]*message, 0, len(s.pending))
	for _, m := range s.pending {
		left = append(left, m)
	}
	s.pending = nil
	return left
}

var _ mqtt.Store = (*ackStore)(nil)
