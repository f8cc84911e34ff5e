package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/edgeflow/edgeflow/internal/bus"
	"github.com/edgeflow/edgeflow/internal/retry"
	"github.com/edgeflow/edgeflow/processor/window"
)

// load restores the partition's checkpoint and claims it: the checkpoint is
// written back by compare-and-set (created empty on a first run). A previous
// owner still running, its lease lapsed while it stalled, then fails its next
// checkpoint and stops, and cannot purge readings this worker has yet to read:
// whatever it purged is at or before the checkpoint claimed here. The chunks
// of a large checkpoint are read after the claim, when no writer removes them
// any more (checkpoint_store.go).
func (w *worker) load(ctx context.Context) error {
	w.state = window.NewState(w.cfg.Window())
	key := checkpointKey(w.p)
	var seq uint64
	var state []byte
	err := retry.Do(ctx, retry.Backoff{}, func(ctx context.Context) error {
		entry, err := w.ckpt.Get(ctx, key)
		switch {
		case errors.Is(err, jetstream.ErrKeyNotFound):
			if state, err = w.state.MarshalBinary(); err != nil {
				return retry.Permanent(fmt.Errorf("partition %d: encode state: %w", w.p, err))
			}
			seq, w.manifest = 0, encodeCheckpoint(0, state)
			w.rev, err = w.ckpt.Create(ctx, key, w.manifest)
		case err == nil:
			c, derr := decodeManifest(entry.Value())
			if derr != nil {
				return retry.Permanent(fmt.Errorf("partition %d checkpoint: %w", w.p, derr))
			}
			if w.rev, err = w.ckpt.Update(ctx, key, entry.Value(), entry.Revision()); err != nil {
				break
			}
			// Claimed: from now on no writer removes the chunks it names.
			// Others may be left over (a write that lost its compare-and-set,
			// a replica that died before its manifest): the next checkpoint
			// removes them.
			seq, w.manifest, w.oldChunks = c.seq, entry.Value(), true
			if state, err = readState(ctx, w.ckpt, w.p, c); errors.Is(err, errCheckpointDamaged) {
				return retry.Permanent(fmt.Errorf("partition %d checkpoint: %w", w.p, err))
			}
		}
		return err // a conflict too: the checkpoint was written meanwhile, read it again
	}, func(err error, _ time.Duration) {
		w.retrying("checkpoint_load", err)
		w.log.Warn("load checkpoint failed; retrying", "partition", w.p, "err", err)
	})
	if err != nil {
		return err
	}
	changed, err := w.state.Load(state)
	if err != nil {
		return fmt.Errorf("partition %d checkpoint state: %w", w.p, err)
	}
	if changed.Changed() {
		w.log.Warn("window configuration changed: checkpoint carried over to it", "partition", w.p, "change", changed)
	}
	w.seq, w.savedSeq = seq, seq
	w.open = w.state.Open()
	w.metrics.OpenWindows.Add(float64(w.open))
	w.log.Info("partition resumed from checkpoint", "partition", w.p, "seq", seq, "open_windows", w.open)
	return nil
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
// megabytes written to NATS: many devices, or the identities of every
// reading in an open window at a high rate; figures in docs/performance.md);
// written at every flush, it would take most of a busy partition's time and
// of NATS's.
const (
	// checkpointShare: full checkpoints take at most about one
	// checkpointShare-th of a partition's time.
	checkpointShare = 10
	// checkpointBytesPerSecond: full checkpoints write at most about this
	// much a second per partition. Their time alone does not bound what
	// NATS stores: a state of many identities encodes fast and is large
	// (docs/decisions.md, "Full checkpoints are paced").
	checkpointBytesPerSecond = 64 << 10
	// maxCheckpointDelay bounds how long a full checkpoint is put off, and
	// so what a takeover replays and the processed readings TELEMETRY keeps.
	maxCheckpointDelay = 30 * time.Second
)

// checkpoint saves seq and the open windows with compare-and-set: if another
// replica wrote the checkpoint since we read it, it owns the partition now.
// It writes the state in full (in chunks when it is larger than a message)
// unless the last full checkpoint was so long or so large that another now
// would take more than its share (fullCheckpointDelay); a flush in between writes
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
	w.nextFull = start.Add(fullCheckpointDelay(w.now().Sub(start), cw.size))
	w.metrics.Devices.Add(float64(w.state.Devices() - w.devices))
	w.devices = w.state.Devices()
	if len(cw.chunks) > 0 || w.oldChunks {
		w.oldChunks = !w.purgeChunks(ctx, cw.first) || len(cw.chunks) > 0
	}
	return nil
}

// fullCheckpointDelay is how long the next full checkpoint is put off after
// one of size bytes written in the time took: long enough that they take
// no more than their share of the partition's time nor of NATS's writes,
// and at most maxCheckpointDelay.
func fullCheckpointDelay(took time.Duration, size int) time.Duration {
	written := time.Duration(size) * time.Second / checkpointBytesPerSecond
	return min(max(checkpointShare*took, written), maxCheckpointDelay)
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
			} else if bus.IsConflict(err) {
				return retry.Permanent(errLostOwnership)
			}
			return err
		}
		rev, err := cw.write(ctx, w.ckpt, w.rev)
		switch {
		case err == nil:
			w.rev, w.savedSeq, w.manifest = rev, w.seq, cw.manifest
		case bus.IsConflict(err):
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
