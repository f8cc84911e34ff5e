package reading

import "bytes"

// A batch is several readings in one message: each in the wire form
// (Encode, which never writes a newline), one per line. Ingest publishes
// the readings of one TELEMETRY partition as batches, and the processor
// publishes the live feed as batches.

// AppendBatch appends data, one reading in the wire form, to batch.
func AppendBatch(batch, data []byte) []byte {
	if len(batch) > 0 {
		batch = append(batch, '\n')
	}
	return append(batch, data...)
}

// EachInBatch calls fn with every reading of batch, in order, until fn
// returns false. Empty lines are skipped.
func EachInBatch(batch []byte, fn func(data []byte) bool) {
	for len(batch) > 0 {
		line, rest, _ := bytes.Cut(batch, []byte{'\n'})
		if len(line) > 0 && !fn(line) {
			return
		}
		batch = rest
	}
}
