// Package respwriter wraps an http.ResponseWriter to record what a handler
// answered (status and bytes) for its request log and metrics, while
// streaming stays streaming: Flush passes through, and Unwrap exposes the
// inner writer to http.ResponseController (Hijack, deadlines). The proxy
// and the emulator both log through it.
package respwriter

import "net/http"

// Recorder is an http.ResponseWriter that records the status and the body
// bytes written through it.
type Recorder struct {
	http.ResponseWriter
	status int
	n      int64
}

// New wraps w.
func New(w http.ResponseWriter) *Recorder { return &Recorder{ResponseWriter: w} }

// WriteHeader implements http.ResponseWriter; the first status counts.
func (w *Recorder) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

// Write implements http.ResponseWriter.
func (w *Recorder) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	n, err := w.ResponseWriter.Write(b)
	w.n += int64(n)
	return n, err
}

// Flush implements http.Flusher when the inner writer does.
func (w *Recorder) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// Unwrap is for http.ResponseController.
func (w *Recorder) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// Status is the status answered: 200 when the handler wrote nothing or a
// body without a header.
func (w *Recorder) Status() int {
	if w.status == 0 {
		return http.StatusOK
	}
	return w.status
}

// Bytes is how many body bytes were written.
func (w *Recorder) Bytes() int64 { return w.n }
