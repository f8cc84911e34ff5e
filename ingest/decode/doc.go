// Package decode turns one MQTT message from a sensor into normalised
// readings, or into an *Error whose Reason says why the message is
// dead-lettered. It is pure: no I/O, no clock (the caller passes now), no
// global state, so every rule below is unit-tested and fuzzed here.
//
// Topics are exactly sensors/{site}/{device} or sensors/{site}/{device}/{metric},
// and every segment must pass reading.ValidName. Names become NATS subject
// tokens, InfluxDB tags, InfluxQL literals and HTML text downstream, so a name that
// fails the check is rejected here rather than escaped later.
//
// Three payload forms are accepted, because they are what small devices
// actually send:
//
//   - A flat JSON object of numeric fields, {"ts":1732560000123,"temperature":21.5,"seq":7}.
//     "ts" (optional) is Unix milliseconds as a JSON number, or an RFC 3339
//     string; "seq" (optional) is a non-negative integer; every other member is
//     a metric whose value must be a JSON number. Nesting is refused outright:
//     a reading is flat, and refusing it keeps decoding linear and cheap.
//   - A bare JSON number on a sensors/{site}/{device}/{metric} topic, which is
//     what `mosquitto_pub -t sensors/lab/t1/temperature -m 21.5` sends.
//   - A SenML pack (RFC 8428, JSON): an array of records with base fields. Only
//     numeric values (v, or the sum s) are accepted; records are grouped by
//     resolved time, one reading per distinct instant. The metric name is the
//     last ':'- or '/'-separated segment of bn+n, so URN-style names such as
//     "urn:dev:ow:10e2073a01080063:temp" yield "temp". Two different names
//     that yield the same metric at one instant (two sensors in one pack)
//     are refused, ReasonNameCollision, rather than one replacing the other.
//
// The JSON is read by a small hand-written scanner (scan.go) rather than
// encoding/json: ingest decodes every message the fleet sends, the accepted
// shapes are tiny, and the scanner never recurses, so hostile nesting costs
// nothing. Every payload accepted as an object or a pack is valid JSON (the
// fuzz test checks this against encoding/json).
//
// Limits bounds the payload size, the metrics per reading and how far a device
// timestamp may be from now; a timestamp outside that window is rejected rather
// than clamped, because a clock that is wrong by days is a fault to surface, not
// data to store.
package decode
