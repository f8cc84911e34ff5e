package bus

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/nats-io/nats.go/jetstream"
)

// Every way JetStream refuses a compare-and-set is a conflict, whatever
// wraps it; other failures are not.
func TestIsConflict(t *testing.T) {
	t.Parallel()
	_, js := connect(t, startNATS(t))
	ctx := t.Context()
	kv, err := EnsureBucket(ctx, js, jetstream.KeyValueConfig{Bucket: "CONFLICT"})
	if err != nil {
		t.Fatal(err)
	}
	rev, err := kv.Create(ctx, "k", []byte("1"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kv.Update(ctx, "k", []byte("2"), rev); err != nil {
		t.Fatal(err)
	}
	_, createErr := kv.Create(ctx, "k", []byte("3"))
	_, updateErr := kv.Update(ctx, "k", []byte("3"), rev)
	deleteErr := kv.Delete(ctx, "k", jetstream.LastRevision(rev))
	_, publishErr := js.Publish(ctx, "$KV.CONFLICT.k", []byte("3"), jetstream.WithExpectLastSequencePerSubject(rev))
	for name, err := range map[string]error{
		"create of an existing key":       createErr,
		"update on a stale revision":      updateErr,
		"delete on a stale revision":      deleteErr,
		"publish with a stale sequence":   publishErr,
		"wrapped":                         fmt.Errorf("checkpoint: %w", updateErr),
		"replicated stream's code":        &jetstream.APIError{ErrorCode: jetstream.JSErrCodeStreamWrongLastSequenceConstant},
		"key gone since it was read (KV)": jetstream.ErrKeyNotFound,
	} {
		if !IsConflict(err) {
			t.Errorf("%s: IsConflict(%v) = false", name, err)
		}
	}
	_, missing := js.KeyValue(ctx, "MISSING")
	for name, err := range map[string]error{
		"nil":             nil,
		"timeout":         context.DeadlineExceeded,
		"no such bucket":  missing,
		"other API error": &jetstream.APIError{ErrorCode: jetstream.JSErrCodeStreamNotFound},
		"plain":           errors.New("wrong last sequence"),
	} {
		if IsConflict(err) {
			t.Errorf("%s: IsConflict(%v) = true", name, err)
		}
	}
}
