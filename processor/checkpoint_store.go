package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"strconv"
	"time"

	"github.com/klauspost/compress/s2"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/edgeflow/edgeflow/internal/retry"
)

// A partition's checkpoint is its stream sequence and its window state, S2
// compressed, in the bucket PROCESSOR_CHECKPOINTS. The key partition.{p}
// holds a small record, the manifest: it is the key every compare-and-set of
// the partition is made on (the claim in load, each checkpoint), so a state
// of any size keeps the fencing of one key. A state that fits in a NATS
// message is in the manifest itself; a larger one is cut into chunks under
// chunks.{p}.{id}.{i}, written before the manifest that names them:
//
//	manifest := magic "EFC\x01", seq (8 bytes, big endian), n (uvarint),
//	            n = 0: the compressed state, inline
//	            n > 0: id, size (uvarints), SHA-256 of the compressed state (32 bytes)
//	            CRC-32C of everything before it (4 bytes, big endian)
//
// The id is the revision the writer's compare-and-set is made on. A revision
// is returned to one writer only, so no two writers ever write the same
// chunk keys, and a reader never sees chunks of two checkpoints mixed.
// A chunk is removed only by a writer whose compare-and-set succeeded, and
// then only chunks stored before its own (a stream purge below its first
// chunk's sequence, which leaves no delete markers): every later manifest
// names either that writer's chunks or newer ones (a claim copies the
// manifest it claims), so the chunks of the manifest a loader has claimed
// stay until it writes a checkpoint of its own. Chunks of a write that lost
// its compare-and-set, or of a replica that died before its manifest, go
// with the next checkpoint's purge.
//
// Before this format, partition.{p} held the sequence and state as one S2
// block; decodeCheckpoint still reads it (it never starts with the magic: a
// block starting "EF" would begin with a copy, which S2 refuses).
const checkpointMagic = "EFC\x01"

// maxChunk is the largest chunk, however large a max payload the server
// allows: larger messages hold up the connection they travel on and cost
// the server a buffer each. 1 MiB is NATS's default max payload.
const maxChunk = 1 << 20

// errCheckpointDamaged means a checkpoint's manifest names chunks that are
// missing or do not match it: it cannot be loaded, and retrying will not
// change that.
var errCheckpointDamaged = errors.New("checkpoint damaged")

// checkpoint is a decoded manifest (or a checkpoint in the old format).
type checkpoint struct {
	seq uint64
	// state is the window state (not compressed), when the value held it.
	state []byte
	// chunks, id, size and sum describe a state stored in chunks: how many,
	// their key's id, the compressed bytes in all, their SHA-256.
	chunks int
	id     uint64
	size   int
	sum    [sha256.Size]byte
}

func checkpointKey(p int) string { return "partition." + strconv.Itoa(p) }

func chunkKey(p int, id uint64, i int) string {
	return "chunks." + strconv.Itoa(p) + "." + strconv.FormatUint(id, 10) + "." + strconv.Itoa(i)
}

// chunkSize is the largest chunk, and the largest state kept inline, on
// this connection: well inside its max payload, which counts headers too.
func chunkSize(nc *nats.Conn) int {
	mp := int(nc.MaxPayload())
	return max(min(maxChunk, mp-mp/16), 1)
}

// encodeCheckpoint is the manifest of seq and state with the state inline.
func encodeCheckpoint(seq uint64, state []byte) []byte {
	return encodeInline(seq, s2.Encode(nil, state))
}

// encodeInline is the manifest of seq with its compressed state inline.
func encodeInline(seq uint64, compressed []byte) []byte {
	b := make([]byte, 0, len(checkpointMagic)+8+1+len(compressed)+4)
	b = append(b, checkpointMagic...)
	b = binary.BigEndian.AppendUint64(b, seq)
	b = binary.AppendUvarint(b, 0)
	b = append(b, compressed...)
	return binary.BigEndian.AppendUint32(b, crc32.Checksum(b, castagnoli))
}

// encodeChunkedCheckpoint is the manifest of a state stored in chunks.
func encodeChunkedCheckpoint(c checkpoint) []byte {
	b := make([]byte, 0, len(checkpointMagic)+8+3*binary.MaxVarintLen64+sha256.Size+4)
	b = append(b, checkpointMagic...)
	b = binary.BigEndian.AppendUint64(b, c.seq)
	b = binary.AppendUvarint(b, uint64(c.chunks))
	b = binary.AppendUvarint(b, c.id)
	b = binary.AppendUvarint(b, uint64(c.size))
	b = append(b, c.sum[:]...)
	return binary.BigEndian.AppendUint32(b, crc32.Checksum(b, castagnoli))
}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// decodeCheckpoint reads a manifest, or a checkpoint of the old format.
func decodeCheckpoint(v []byte) (checkpoint, error) {
	if !bytes.HasPrefix(v, []byte(checkpointMagic)) {
		return decodeLegacyCheckpoint(v)
	}
	var c checkpoint
	if len(v) < len(checkpointMagic)+8+1+4 {
		return c, errors.New("checkpoint manifest truncated")
	}
	body := v[:len(v)-4]
	if crc32.Checksum(body, castagnoli) != binary.BigEndian.Uint32(v[len(body):]) {
		return c, errors.New("checkpoint manifest: checksum mismatch")
	}
	b := body[len(checkpointMagic):]
	c.seq = binary.BigEndian.Uint64(b)
	b = b[8:]
	n, k := binary.Uvarint(b)
	if k <= 0 {
		return c, errors.New("checkpoint manifest: bad chunk count")
	}
	b = b[k:]
	if n == 0 {
		state, err := s2.Decode(nil, b)
		if err != nil {
			return c, fmt.Errorf("checkpoint state: %w", err)
		}
		c.state = state
		return c, nil
	}
	id, k1 := binary.Uvarint(b)
	if k1 <= 0 {
		return c, errors.New("checkpoint manifest: bad chunk id")
	}
	size, k2 := binary.Uvarint(b[k1:])
	b = b[k1+max(k2, 0):]
	if k2 <= 0 || len(b) != sha256.Size || n > size || size > 1<<40 {
		return c, errors.New("checkpoint manifest: bad chunk list")
	}
	c.chunks, c.id, c.size = int(n), id, int(size)
	copy(c.sum[:], b)
	return c, nil
}

// decodeLegacyCheckpoint reads the format before manifests: the stream
// sequence (8 bytes, big endian) and the state, as one S2 block.
func decodeLegacyCheckpoint(v []byte) (checkpoint, error) {
	raw, err := s2.Decode(nil, v)
	if err != nil {
		return checkpoint{}, err
	}
	if len(raw) < 8 {
		return checkpoint{}, errors.New("checkpoint shorter than its sequence")
	}
	return checkpoint{seq: binary.BigEndian.Uint64(raw), state: raw[8:]}, nil
}

// readState returns c's window state, reading its chunks when it has them.
// Chunks missing or not matching the manifest are errCheckpointDamaged; the
// caller must have claimed c, else a writer may be replacing them.
func readState(ctx context.Context, kv jetstream.KeyValue, p int, c checkpoint) ([]byte, error) {
	if c.chunks == 0 {
		return c.state, nil
	}
	compressed := make([]byte, 0, c.size)
	for i := range c.chunks {
		e, err := kv.Get(ctx, chunkKey(p, c.id, i))
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			return nil, fmt.Errorf("chunk %d of %d (id %d) missing: %w", i, c.chunks, c.id, errCheckpointDamaged)
		}
		if err != nil {
			return nil, fmt.Errorf("read checkpoint chunk %d of %d: %w", i, c.chunks, err)
		}
		compressed = append(compressed, e.Value()...)
	}
	if len(compressed) != c.size || sha256.Sum256(compressed) != c.sum {
		return nil, fmt.Errorf("chunks of id %d: %d bytes not matching the manifest's %d: %w", c.id, len(compressed), c.size, errCheckpointDamaged)
	}
	state, err := s2.Decode(nil, compressed)
	if err != nil {
		return nil, fmt.Errorf("chunks of id %d: %w (%w)", c.id, errCheckpointDamaged, err)
	}
	return state, nil
}

// checkpointWrite is one checkpoint being written: the manifest, and the
// chunks it names (none when the state is inline).
type checkpointWrite struct {
	key      string
	manifest []byte
	chunks   [][]byte
	keys     []string
	size     int // compressed bytes
	// first is the stream sequence of the first chunk stored by the write
	// that succeeded (of the manifest, when inline): chunks stored before
	// it belong to older checkpoints.
	first   uint64
	written bool // the chunks are stored (only the manifest is left)
}

// newCheckpointWrite prepares the checkpoint of seq and state for a
// compare-and-set on revision rev, in chunks of at most size bytes.
func newCheckpointWrite(p int, seq uint64, state []byte, rev uint64, size int) *checkpointWrite {
	compressed := s2.Encode(nil, state)
	cw := &checkpointWrite{key: checkpointKey(p), size: len(compressed)}
	if len(compressed) <= size {
		cw.manifest = encodeInline(seq, compressed)
		return cw
	}
	c := checkpoint{seq: seq, id: rev, size: len(compressed), sum: sha256.Sum256(compressed)}
	for rest := compressed; len(rest) > 0; rest = rest[min(size, len(rest)):] {
		cw.keys = append(cw.keys, chunkKey(p, rev, len(cw.chunks)))
		cw.chunks = append(cw.chunks, rest[:min(size, len(rest))])
	}
	c.chunks = len(cw.chunks)
	cw.manifest = encodeChunkedCheckpoint(c)
	return cw
}

// write stores the chunks (once they all were, they are not written again)
// and then the manifest by compare-and-set on rev, returning its revision.
// A refused compare-and-set is a conflict (isConflict): another replica
// claimed the partition.
func (cw *checkpointWrite) write(ctx context.Context, kv jetstream.KeyValue, rev uint64) (uint64, error) {
	if !cw.written {
		for i, chunk := range cw.chunks {
			seq, err := kv.Put(ctx, cw.keys[i], chunk)
			if err != nil {
				return 0, fmt.Errorf("write chunk %d of %d: %w", i, len(cw.chunks), err)
			}
			if i == 0 {
				cw.first = seq
			}
		}
		cw.written = true
	}
	next, err := kv.Update(ctx, cw.key, cw.manifest, rev)
	if err == nil && len(cw.chunks) == 0 {
		cw.first = next
	}
	return next, err
}

// tooLarge reports an error that a write of the same message will meet
// again: larger than the server's max payload or the stream's message size.
func tooLarge(err error) bool {
	return errors.Is(err, nats.ErrMaxPayload) || errors.Is(err, jetstream.ErrStreamMessageExceedsMaximum)
}

// purgeChunks removes partition p's chunks stored before sequence first from
// the bucket's stream. Only the writer of the checkpoint stored from first
// on may call it, once its manifest is stored.
func purgeChunks(ctx context.Context, s jetstream.Stream, bucket string, p int, first uint64) error {
	return s.Purge(ctx, jetstream.WithPurgeSubject("$KV."+bucket+".chunks."+strconv.Itoa(p)+".>"),
		jetstream.WithPurgeSequence(first))
}

// purgeChunks removes the partition's chunks stored before sequence first
// (purgeChunks above), reporting whether it did; a failure only leaves them
// to the next checkpoint's purge.
func (w *worker) purgeChunks(ctx context.Context, first uint64) bool {
	var err error
	if w.ckptStream == nil {
		// The bucket's stream: jetstream names it KV_ and the bucket.
		w.ckptStream, err = w.js.Stream(ctx, "KV_"+w.ckpt.Bucket())
	}
	if err == nil {
		err = purgeChunks(ctx, w.ckptStream, w.ckpt.Bucket(), w.p, first)
	}
	if err != nil {
		w.ckptStream = nil
		if ctx.Err() == nil {
			w.log.Warn("remove old checkpoint chunks", "partition", w.p, "err", err)
		}
		return false
	}
	return true
}

// A full checkpoint of a large state is costly (MarshalBinary, compression,
// megabytes written; figures in docs/performance.md, "Many devices");
// written at every flush, it would take most of a busy partition's time and
// disk.
const (
	// checkpointShare: full checkpoints take at most about one
	// checkpointShare-th of a partition's time.
	checkpointShare = 10
	// maxCheckpointDelay bounds how long a full checkpoint is put off, and
	// so what a takeover replays and the processed readings TELEMETRY keeps.
	maxCheckpointDelay = 30 * time.Second
)

// checkpoint saves seq and the open windows with compare-and-set: if another
// replica wrote the checkpoint since we read it, it owns the partition now.
// It writes the state in full (in chunks when it is larger than a message)
// unless the last full checkpoint took so long that another now would take
// more than its share of time (checkpointShare); a flush in between writes
// the last manifest again by compare-and-set, which saves nothing new but
// fences as a full checkpoint does: a replica whose partition was claimed
// fails its next flush, whichever it is. The last flush before the partition
// is handed back is always full.
func (w *worker) checkpoint(ctx context.Context) error {
	if !w.stopping && w.now().Before(w.nextFull) {
		return w.storeCheckpoint(ctx, nil)
	}
	start := w.now()
	state, err := w.state.MarshalBinary()
	if err != nil {
		return fmt.Errorf("partition %d: encode state: %w", w.p, err)
	}
	cw := newCheckpointWrite(w.p, w.seq, state, w.rev, chunkSize(w.js.Conn()))
	if err := w.storeCheckpoint(ctx, cw); err != nil {
		return err
	}
	w.nextFull = start.Add(min(checkpointShare*w.now().Sub(start), maxCheckpointDelay))
	w.metrics.Devices.Add(float64(w.state.Devices() - w.devices))
	w.devices = w.state.Devices()
	if len(cw.chunks) > 0 || w.oldChunks {
		w.oldChunks = !w.purgeChunks(ctx, cw.first) || len(cw.chunks) > 0
	}
	return nil
}

// storeCheckpoint writes cw, or the last manifest again when cw is nil, by
// compare-and-set on the revision this worker wrote or claimed last,
// retrying while NATS is away. A write NATS refuses for its size would be
// refused again: it ends the worker, and the partition shows as stalled with
// the reason (Ownership).
func (w *worker) storeCheckpoint(ctx context.Context, cw *checkpointWrite) error {
	return retry.Do(ctx, retry.Backoff{}, func(ctx context.Context) error {
		if cw == nil {
			rev, err := w.ckpt.Update(ctx, checkpointKey(w.p), w.manifest, w.rev)
			if err == nil {
				w.rev = rev
			} else if isConflict(err) {
				return retry.Permanent(errLostOwnership)
			}
			return err
		}
		rev, err := cw.write(ctx, w.ckpt, w.rev)
		switch {
		case err == nil:
			w.rev, w.savedSeq, w.manifest = rev, w.seq, cw.manifest
		case isConflict(err):
			return retry.Permanent(errLostOwnership)
		case tooLarge(err):
			return retry.Permanent(fmt.Errorf("partition %d: checkpoint of %d bytes in %d chunks refused: %w",
				w.p, cw.size, len(cw.chunks), err))
		}
		return err
	}, func(err error, _ time.Duration) {
		w.retrying("checkpoint", err)
		w.log.Warn("checkpoint failed; retrying", "partition", w.p, "err", err)
	})
}
