// Package window computes event-time tumbling-window aggregates (count,
// sum, min, max, mean, first, last per site, device and metric) for the
// devices of one TELEMETRY partition. It does no I/O: a processor worker
// feeds it the partition's readings in stream order, closes due windows,
// writes them, and checkpoints the State with the stream sequence.
//
// # Determinism
//
// A State loaded from a checkpoint and fed the same readings and the same
// Listen and CloseDue calls produces bit-identical aggregates. More than
// that, whether a reading counts never depends on when CloseDue(…, false) is
// called: it depends only on the readings before it in the stream and on the
// windows closed for silence. A replica replaying the stream after a takeover
// therefore rebuilds exactly the windows its predecessor closed by event
// time, whatever its batch boundaries.
//
// Closing for silence (Listen, then CloseDue with caughtUp) and forgetting
// are the only decisions that depend on something outside the stream; they
// are recorded in the State, so they are reproduced exactly once the State
// that carries them is checkpointed.
//
// # Windows and lateness
//
// For each length, a reading with event time ts belongs to the window
// [ts − ts mod size, … + size), aligned to the Unix epoch. Each device has a
// watermark: its time (the newest event time its readings vouch for, see
// "Device clocks") minus Lateness. For one length, a reading is late, and
// changes nothing for that length, when its window
//
//   - ends at or before the device's watermark (the window is due, closed or
//     not yet emitted), or
//   - ends at or before the device's closed-until mark: the end of the
//     newest window of that length already closed (by either rule) or
//     forgotten.
//
// A reading late for one length still counts in the others. first is the
// value with the smallest event time (ties: the one added first) and last
// the value with the largest (ties: the one added last).
//
// Every aggregate is finite, as JSON and line protocol require. A sum beyond
// the float64 range (two values near 1e308) is reported as ±math.MaxFloat64;
// the mean is still the mean of the values, bit for bit the float64 sum
// divided by the count while the sum is in range, and within rounding of the
// exact mean beyond it (the sum is then kept scaled by a power of two).
//
// # Duplicates
//
// Ingest publishes readings in batches, so JetStream cannot deduplicate a
// reading delivered twice (ingest redelivered after a reconnect, a device's
// QoS 1 retransmission): the two copies come in different messages. The
// State drops them where the windows are. A reading whose identity
// (reading.Identity: site, device, seq, device time, metric names and
// values) equals that of a reading already folded into the device's
// windows, while that earlier reading could still count somewhere, is a
// duplicate: Add changes nothing at all (no window, no device clock, no
// silence) and says so. A reading with neither seq nor device time has no
// identity and is never a duplicate: two such readings cannot be told from
// one delivered twice, so they are counted at least once rather than
// merged.
//
// Each device keeps the identity and event time of every reading folded
// into at least one of its windows (a reading late for every length is
// not kept). An identity is looked for only while its event time could
// still count: while, for some length, its window ends after both the
// device's watermark and its closed-until mark. This depends only on the
// stream and on the windows closed for silence, not on when CloseDue is
// called, so duplicates keep the determinism above. An identity is
// forgotten once its window of every length ends at or before that
// length's closed-until mark (the watermark is not enough: a lateness
// raised by a new configuration can reopen what it made due). The horizon
// is therefore:
//
//   - Readings with device time are exact for ever: a replay carries the
//     original's event time, and once that identity is forgotten the
//     replay is late for every length.
//   - Readings with only a seq carry ingest's receive time, so a replay
//     has a later event time than the original. It is found (by identity,
//     whatever its time) while the original's identity is kept: about the
//     largest length plus the lateness after it was folded, or until the
//     device's silence closes its windows. A replay later than that counts
//     again (at-least-once).
//
// A reading with device time is looked for by its event time, and its
// identity is kept folded to 32 bits: a copy has the same event time, so
// only readings of the same device at the same millisecond can be taken
// for one another. A device that sends at most one reading a millisecond
// cannot lose one this way; one that sends k different readings with the
// same device time (a clock coarser than its rate) has each dropped wrongly
// with a probability of about (k−1)·2⁻³² (2.3·10⁻¹⁰ for k = 2, one reading
// in 43 million for k = 100). Readings without device time keep all 64
// bits, since their copies are looked for by identity alone.
//
// A forgotten device's identities go with it (the forget floor keeps its
// replays late). Loading into another configuration keeps every identity
// and forgets those the new lengths allow; since the horizon depends on
// the lengths, a replay after the switch may be found where a run that
// never switched would have counted it, or the reverse. The identities are
// part of the checkpoint, so a replica that takes over after a crash drops
// the readings its predecessor folded and it reads again.
//
// # Device clocks
//
// A device's time follows its readings' event times, but a reading vouches
// for its event time only as far as its arrival supports it: it moves the
// device's time to at most
//
//	Received + min(its clock offset, the previous reading's clock offset)
//
// where a reading's clock offset is its event time minus its Received (ingest's
// receive time), and the previous reading's is 0 for a device's first
// reading. A device whose clock runs ahead or behind by a steady amount
// confirms its offset with every reading: its time follows its event times
// (behind them by at most the jitter of its network delay), and its windows
// close on its own clock. A single reading dated in the future (a glitching
// clock, or a message forged with the device's credential; ingest accepts up
// to MAX_FUTURE ahead) is not confirmed by the one before: it moves the
// device's time no further than its arrival time, so the readings after it
// are not late. It still counts, in its own window, which closes once the
// device's time reaches it. A clock that jumps ahead is followed from its
// second reading on; two readings in a row dated in the future move the
// device's time like a clock that jumped. A reading without Received (0,
// from before ingest recorded it) vouches for its event time. Everything
// comes from the readings, so a replay reproduces it; the previous offset
// is part of the checkpoint.
//
// # Closing
//
// CloseDue closes a window when its end is at or before the device's
// watermark, and, when the worker is caught up with its partition, when the
// device has been silent long enough:
//
//	end + Lateness + IdleGrace <= device's time + silence
//
// where silence is how long the worker has listened to the partition
// (Listen) since the device's newest reading was added: time during which
// the worker had read everything in its partition and nothing of the device
// came. It is measured on the worker's clock from when a reading was
// consumed, not from when it was produced or received, so time the worker
// spent blocked (InfluxDB or NATS away) or reading a backlog is never
// silence: a device that kept sending during an outage has its readings in
// the backlog, and none of them is late because the outage lasted. Nor does
// the device's own clock matter: a device whose clock lags, or that is
// uploading a buffered backlog, is silent only when its readings stop
// coming. Silence is part of the State (and of its checkpoint), so a replica
// that takes over goes on counting it.
//
// # Forgetting
//
// A device entry (its time, newest Received, closed-until marks) is small
// but would grow with device churn forever. CloseDue with caughtUp drops a
// device when it has no open window and its time, its newest Received and
// all its closed-until marks are at or before now − ForgetAfter. Dropping
// the closed-until marks must not let a very late reading reopen a window
// that was already published (its rewrite would replace the full aggregate
// in InfluxDB by a partial one), so the State keeps one partition-wide
// forget floor: the largest closed-until mark of any forgotten device. A device entry created afterwards starts with every
// closed-until mark at the floor: its readings whose window ends at or
// before the floor are late. Since the floor never exceeds
// (the wall time of a forgetting) − ForgetAfter, this only refuses data
// that is more than ForgetAfter old, from devices not currently tracked; and
// devices whose clock runs ahead are never forgotten, so they cannot push
// the floor into the present.
//
// # Changing the configuration
//
// A checkpoint loads into a State of any configuration (Load), so that a
// rolling update that changes the window lengths, the lateness, the idle
// grace or the forgetting horizon takes the partitions over like any
// takeover. The State's own configuration applies from then on:
//
//   - A kept length carries every device's open windows and closed-until
//     mark over: its results are those of a State that never changed.
//   - An added length starts, for each device, at its first boundary after
//     every reading the device's windows hold or held (its time, the
//     newest reading of each open window, the end of each window closed). The window the switch fell in would lack the readings folded
//     before it, so it is never opened: a reading for it, or for an earlier
//     window, is not counted for that length, and is not late either unless
//     the watermark makes it late. Every window of an added length holds all
//     the readings of its span.
//   - A removed length's open windows are dropped unpublished, and counted
//     (Reconfiguration.Dropped): closing them early would publish windows
//     that lack their last readings.
//
// While replicas of both configurations run, a partition may move back and
// forth: each move carries the lengths both have over exactly and restarts
// the others.
//
// A State is not safe for concurrent use: one worker owns one partition.
package window
