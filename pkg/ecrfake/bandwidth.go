package ecrfake

import (
	"context"
	"io"
	"sync"
	"sync/atomic"
	"time"
)

// uploadLink is the emulator's model of the pusher's network link for
// layer uploads: every byte the registry's upload handlers read (the
// bodies of upload starts, PATCHes and PUTs) is counted and, with a
// bandwidth set, taken from one token bucket shared by all uploads, as
// one internet uplink is shared by a push's parallel layer uploads.
type uploadLink struct {
	bytes atomic.Int64

	mu     sync.Mutex
	rate   float64   // bytes per second; 0: unlimited
	tokens float64   // bytes that may be read now (negative: owed)
	last   time.Time // when tokens was last topped up
}

// burst bounds how many bytes the bucket holds: 50 ms of the rate, at
// least 32 KiB, so reads stay smooth and a pause earns no burst.
func (l *uploadLink) burst() float64 { return max(l.rate/20, 32<<10) }

func (l *uploadLink) setRate(bytesPerSecond int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.rate = float64(max(bytesPerSecond, 0))
	l.tokens, l.last = 0, time.Now()
}

// take accounts for n bytes read and waits, at the set rate, until the
// link would have carried them.
func (l *uploadLink) take(ctx context.Context, n int) error {
	l.bytes.Add(int64(n))
	l.mu.Lock()
	if l.rate <= 0 {
		l.mu.Unlock()
		return nil
	}
	now := time.Now()
	l.tokens = min(l.tokens+now.Sub(l.last).Seconds()*l.rate, l.burst())
	l.last = now
	l.tokens -= float64(n)
	var wait time.Duration
	if l.tokens < 0 {
		wait = time.Duration(-l.tokens / l.rate * float64(time.Second))
	}
	l.mu.Unlock()
	if wait <= 0 {
		return nil
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// linkReader reads an upload body through the link.
type linkReader struct {
	ctx  context.Context
	r    io.ReadCloser
	link *uploadLink
}

// maxLinkRead keeps each read small enough that the rate holds within a
// read, not only on average.
const maxLinkRead = 32 << 10

func (r *linkReader) Read(p []byte) (int, error) {
	if len(p) > maxLinkRead {
		p = p[:maxLinkRead]
	}
	n, err := r.r.Read(p)
	if n > 0 {
		if werr := r.link.take(r.ctx, n); werr != nil && err == nil {
			err = werr
		}
	}
	return n, err
}

func (r *linkReader) Close() error { return r.r.Close() }

// UploadBytes returns how many bytes of layer uploads the registry's
// upload handlers have read (bodies of upload starts, PATCHes and PUTs).
func (e *Emulator) UploadBytes() int64 { return e.data.link.bytes.Load() }

// SetUploadBandwidth limits the bytes per second the registry's upload
// handlers read, all uploads together, as a pusher's uplink would; 0
// removes the limit.
func (e *Emulator) SetUploadBandwidth(bytesPerSecond int64) { e.data.link.setRate(bytesPerSecond) }
