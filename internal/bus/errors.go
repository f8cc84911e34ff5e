package bus

import (
	"errors"

	"github.com/nats-io/nats.go/jetstream"
)

// IsConflict reports a compare-and-set that JetStream refused because the
// key or subject is no longer at the revision the write expected: someone
// else wrote it in between. It covers KV Create on an existing key
// (jetstream.ErrKeyExists), KV Update and Delete on a stale revision
// (jetstream.ErrKeyRevisionMismatch), a key gone since it was read
// (jetstream.ErrKeyNotFound), and any publish with an expected last
// sequence, by its API error code: 10071, or 10164 from a replicated
// stream.
func IsConflict(err error) bool {
	if errors.Is(err, jetstream.ErrKeyExists) || errors.Is(err, jetstream.ErrKeyRevisionMismatch) ||
		errors.Is(err, jetstream.ErrKeyNotFound) {
		return true
	}
	var apiErr *jetstream.APIError
	return errors.As(err, &apiErr) && (apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence ||
		apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequenceConstant)
}
