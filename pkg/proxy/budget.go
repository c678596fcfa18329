package proxy

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"

	"github.com/distribution/distribution/v3/registry/api/errcode"
)

// DefaultManifestBudget bounds the bytes of manifests a proxy holds at once
// (16 of ECR's largest).
const DefaultManifestBudget = 64 << 20

// manifestChunk is the first reservation for a manifest of unknown length;
// it doubles as the body grows.
const manifestChunk = 64 << 10

// retryAfter is the Retry-After (seconds) of a manifest refused because the
// budget is spent.
const retryAfter = "2"

// ManifestBudget bounds the bytes of all manifests buffered at once by the
// proxies that share it. Safe for concurrent use.
type ManifestBudget struct {
	limit int64
	mu    sync.Mutex
	used  int64
}

// NewManifestBudget returns a budget of limit bytes (DefaultManifestBudget
// when limit <= 0). A manifest larger than limit is always refused.
func NewManifestBudget(limit int64) *ManifestBudget {
	if limit <= 0 {
		limit = DefaultManifestBudget
	}
	return &ManifestBudget{limit: limit}
}

// take reserves n bytes, or reports false when they would pass the limit.
func (b *ManifestBudget) take(n int64) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.used+n > b.limit {
		return false
	}
	b.used += n
	return true
}

func (b *ManifestBudget) give(n int64) {
	b.mu.Lock()
	b.used -= n
	b.mu.Unlock()
}

// InUse returns the bytes reserved now.
func (b *ManifestBudget) InUse() int64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.used
}

// errBudgetSpent is a manifest refused because the budget is spent.
type errBudgetSpent struct{ limit int64 }

func (e *errBudgetSpent) Error() string {
	return fmt.Sprintf("too many manifests are being pushed through ecrgate at once: this one would pass its limit of %d MiB of manifests held at once; retry in a moment", e.limit>>20)
}

// bufferManifest reads a manifest (at most MaxManifestSize) so the request
// can be replayed after a token refresh or a re-created repository. The
// bytes are reserved from b first (by Content-Length when known, as they
// come otherwise); release gives them back once the request is done, and is
// never nil.
func bufferManifest(r *http.Request, b *ManifestBudget) (release func(), err error) {
	var reserved int64
	release = func() {
		b.give(reserved)
		reserved = 0
	}
	defer func() {
		if err != nil {
			release()
		}
	}()
	if r.ContentLength > MaxManifestSize {
		return release, errcode.ErrorCodeManifestInvalid.WithMessage(fmt.Sprintf("manifest of %d bytes exceeds ECR's limit of %d bytes", r.ContentLength, MaxManifestSize))
	}
	spent := func() error {
		return errcode.ErrorCodeTooManyRequests.WithMessage((&errBudgetSpent{limit: b.limit}).Error())
	}
	var buf []byte
	if r.ContentLength >= 0 {
		if !b.take(r.ContentLength) {
			return release, spent()
		}
		reserved = r.ContentLength
		buf = make([]byte, r.ContentLength)
		n, err := io.ReadFull(io.LimitReader(r.Body, r.ContentLength), buf)
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return release, errcode.ErrorCodeManifestInvalid.WithMessage(fmt.Sprintf("read manifest: the body ended after %d of the %d bytes its Content-Length announced", n, r.ContentLength))
		}
		if err != nil {
			return release, errcode.ErrorCodeManifestInvalid.WithMessage("read manifest: " + err.Error())
		}
	} else {
		// Unknown length (chunked): reserve before each growth of the buffer.
		for {
			if len(buf) == cap(buf) {
				if len(buf) > MaxManifestSize {
					return release, errcode.ErrorCodeManifestInvalid.WithMessage(fmt.Sprintf("manifest exceeds ECR's limit of %d bytes", MaxManifestSize))
				}
				size := min(max(2*int64(cap(buf)), manifestChunk), MaxManifestSize+1)
				if !b.take(size - reserved) {
					return release, spent()
				}
				reserved = size
				grown := make([]byte, len(buf), size)
				copy(grown, buf)
				buf = grown
			}
			n, err := r.Body.Read(buf[len(buf):cap(buf)])
			buf = buf[:len(buf)+n]
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				return release, errcode.ErrorCodeManifestInvalid.WithMessage("read manifest: " + err.Error())
			}
		}
		if len(buf) > MaxManifestSize {
			return release, errcode.ErrorCodeManifestInvalid.WithMessage(fmt.Sprintf("manifest exceeds ECR's limit of %d bytes", MaxManifestSize))
		}
	}
	if !json.Valid(buf) {
		// Every manifest format ECR takes is JSON; a short or garbled
		// body (a Content-Length that lies) is refused here.
		return release, errcode.ErrorCodeManifestInvalid.WithMessage(fmt.Sprintf("manifest of %d bytes is not JSON", len(buf)))
	}
	r.Body = io.NopCloser(bytes.NewReader(buf))
	r.ContentLength = int64(len(buf))
	r.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(buf)), nil }
	return release, nil
}
