package intercept

import (
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// tunnel copies bytes between a CONNECT client and its target, never
// looking at them. A side that ends cleanly is half-closed on the other
// (CloseWrite); an error, the idle timeout or shutdown closes both.
type tunnel struct {
	target net.Conn
	idle   time.Duration
	start  time.Time

	mu     sync.Mutex
	client net.Conn // set once hijacked
	closed bool

	last     atomic.Int64 // time.Since(start) of the last activity either way
	up, down atomic.Int64 // bytes client→target, target→client
}

func newTunnel(target net.Conn, idle time.Duration) *tunnel {
	return &tunnel{target: target, idle: idle, start: time.Now()}
}

func (t *tunnel) setClient(c net.Conn) {
	t.mu.Lock()
	t.client = c
	closed := t.closed
	t.mu.Unlock()
	if closed {
		_ = c.Close()
	}
}

// close closes both sides; safe to call more than once, from any goroutine.
func (t *tunnel) close() {
	t.mu.Lock()
	t.closed = true
	c := t.client
	t.mu.Unlock()
	_ = t.target.Close()
	if c != nil {
		_ = c.Close()
	}
}

func (t *tunnel) touch() { t.last.Store(int64(time.Since(t.start))) }

// run sends the bytes the client sent ahead of the 200, then copies both
// ways until both directions end; it closes both connections.
func (t *tunnel) run(pre []byte) {
	defer t.close()
	t.touch()
	if len(pre) > 0 {
		n, err := t.target.Write(pre)
		t.up.Add(int64(n))
		if err != nil {
			return
		}
	}
	done := make(chan struct{})
	defer close(done)
	go t.watch(done)
	var wg sync.WaitGroup
	wg.Go(func() { t.pipe(t.target, t.client, &t.up) })
	wg.Go(func() { t.pipe(t.client, t.target, &t.down) })
	wg.Wait()
}

type closeWriter interface{ CloseWrite() error }

func (t *tunnel) pipe(dst, src net.Conn, count *atomic.Int64) {
	buf := make([]byte, 32<<10)
	for {
		nr, rerr := src.Read(buf)
		if nr > 0 {
			t.touch()
			nw, werr := dst.Write(buf[:nr])
			count.Add(int64(nw))
			t.touch()
			if werr != nil {
				t.close()
				return
			}
		}
		if rerr != nil {
			if errors.Is(rerr, io.EOF) {
				if cw, ok := dst.(closeWriter); ok && cw.CloseWrite() == nil {
					return // the other direction goes on
				}
			}
			t.close()
			return
		}
	}
}

// watch closes the tunnel once neither side has moved a byte for t.idle.
func (t *tunnel) watch(done <-chan struct{}) {
	timer := time.NewTimer(t.idle)
	defer timer.Stop()
	for {
		select {
		case <-done:
			return
		case <-timer.C:
			quiet := time.Since(t.start) - time.Duration(t.last.Load())
			if quiet >= t.idle {
				t.close()
				return
			}
			timer.Reset(t.idle - quiet)
		}
	}
}
