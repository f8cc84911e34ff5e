package retry

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestDoRetriesUntilSuccess(t *testing.T) {
	calls, retries := 0, 0
	err := Do(context.Background(), Backoff{Initial: time.Millisecond, Max: 2 * time.Millisecond},
		func(context.Context) error {
			calls++
			if calls < 4 {
				return errors.New("down")
			}
			return nil
		}, func(error, time.Duration) { retries++ })
	if err != nil || calls != 4 || retries != 3 {
		t.Fatalf("err=%v calls=%d retries=%d, want nil 4 3", err, calls, retries)
	}
}

func TestDoStopsWithContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	calls := 0
	err := Do(ctx, Backoff{Initial: time.Millisecond}, func(context.Context) error {
		calls++
		if calls == 3 {
			cancel()
		}
		return errors.New("down")
	}, nil)
	if !errors.Is(err, context.Canceled) || calls != 3 {
		t.Fatalf("err=%v calls=%d, want context.Canceled after 3", err, calls)
	}
}

func TestBackoffGrowsToMaxWithJitter(t *testing.T) {
	b := Backoff{Initial: 100 * time.Millisecond, Max: 400 * time.Millisecond}
	want := []time.Duration{100, 200, 400, 400, 400}
	for i, w := range want {
		w *= time.Millisecond
		got := b.Next()
		if got < w*8/10 || got > w*12/10 {
			t.Fatalf("wait %d = %v, want %v ±20%%", i, got, w)
		}
	}
	b.Reset()
	if got := b.Next(); got > 120*time.Millisecond {
		t.Fatalf("after Reset wait = %v, want about 100ms", got)
	}
}

func TestDoReturnsPermanentErrorAtOnce(t *testing.T) {
	stop := errors.New("conflict")
	calls := 0
	err := Do(context.Background(), Backoff{Initial: time.Millisecond}, func(context.Context) error {
		calls++
		return Permanent(stop)
	}, nil)
	if !errors.Is(err, stop) || calls != 1 {
		t.Fatalf("err=%v calls=%d, want conflict after 1 call", err, calls)
	}
}
