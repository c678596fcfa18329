package server_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ecrgate/ecrgate/pkg/config"
	"github.com/ecrgate/ecrgate/pkg/ecrfake"
	"github.com/ecrgate/ecrgate/pkg/localca"
	"github.com/ecrgate/ecrgate/pkg/server"
)

// heldUpstream answers every upstream request with 200 {"tags":[]}, but
// holds the ones for repository slow/… until release is closed (or the
// request's context ends).
type heldUpstream struct {
	arrived chan string // one value per held request: its path
	release chan struct{}
}

func newHeldUpstream() *heldUpstream {
	return &heldUpstream{arrived: make(chan string, 16), release: make(chan struct{})}
}

func (h *heldUpstream) RoundTrip(r *http.Request) (*http.Response, error) {
	if strings.HasPrefix(r.URL.Path, "/v2/slow/") {
		h.arrived <- r.URL.Path
		select {
		case <-h.release:
		case <-r.Context().Done():
			return nil, r.Context().Err()
		}
	}
	return &http.Response{StatusCode: http.StatusOK, Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1, Request: r,
		Header:        http.Header{"Content-Type": {"application/json"}, "Docker-Distribution-Api-Version": {"registry/2.0"}},
		Body:          io.NopCloser(strings.NewReader(`{"name":"slow/app","tags":[]}`)),
		ContentLength: int64(len(`{"name":"slow/app","tags":[]}`))}, nil
}

// drainServer is server.Run with intercept mode on, in process.
type drainServer struct {
	proxy, intercept string
	client           *http.Client  // reaches both listeners; https through the intercept listener
	done             chan struct{} // closed when Run has returned, with err
	err              error
	cancel           context.CancelFunc
}

func startDrain(t *testing.T, up http.RoundTripper, shutdown time.Duration) *drainServer {
	t.Helper()
	e := ecrfake.Start(t, ecrfake.Options{})
	env := secEnv(t, e)
	caDir := filepath.Join(t.TempDir(), "ca")
	ca, err := localca.Init(caDir, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	yaml := fmt.Sprintf("default_registry: %s\naudit_log: %s\n", registry, filepath.Join(t.TempDir(), "audit.jsonl"))
	cfg, err := config.Parse([]byte(yaml), filepath.Join(t.TempDir(), "ecrgate.yaml"), env)
	if err != nil {
		t.Fatal(err)
	}
	given := map[string]net.Listener{}
	for _, n := range []string{"registry", "admin", "intercept"} {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		given[n] = ln
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &drainServer{proxy: given["registry"].Addr().String(), intercept: given["intercept"].Addr().String(), done: make(chan struct{}), cancel: cancel}
	ready := make(chan struct{})
	go func() {
		s.err = server.Run(ctx, server.Options{Config: cfg, Env: env, Logger: slog.New(slog.DiscardHandler), Listeners: given,
			Transport: up, CADir: caDir, ShutdownTimeout: shutdown, Ready: func(net.Addr, net.Addr) { close(ready) }})
		close(s.done)
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-s.done:
		case <-time.After(shutdown + 30*time.Second):
			t.Error("server.Run did not return")
		}
	})
	select {
	case <-ready:
	case <-s.done:
		t.Fatalf("server.Run ended early: %v", s.err)
	case <-time.After(30 * time.Second):
		t.Fatal("the server did not start")
	}
	roots := x509.NewCertPool()
	roots.AddCert(ca.Certificate())
	tr := &http.Transport{
		Proxy: func(r *http.Request) (*url.URL, error) {
			if r.URL.Scheme == "https" {
				return &url.URL{Scheme: "http", Host: s.intercept}, nil
			}
			return nil, nil
		},
		TLSClientConfig: &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12},
	}
	t.Cleanup(tr.CloseIdleConnections)
	s.client = &http.Client{Transport: tr}
	return s
}

type answer struct {
	status int
	body   string
	err    error
}

func get(c *http.Client, u string) <-chan answer {
	out := make(chan answer, 1)
	go func() {
		req, _ := http.NewRequest(http.MethodGet, u, nil)
		req.Header.Set("Authorization", "Basic dGVzdDp0ZXN0") // intercept mode forwards the client's own
		resp, err := c.Do(req)
		if err != nil {
			out <- answer{err: err}
			return
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		out <- answer{status: resp.StatusCode, body: string(b), err: err}
	}()
	return out
}

// Issue 12, item 6: a stop signal lets a request in flight on any listener
// finish, the intercept listener's included (serve used to wait for the
// registry and admin listeners only, and cut intercept-mode pushes by
// exiting), and Run returns only after it has.
func TestShutdownDrainsEveryListener(t *testing.T) {
	for _, mode := range []string{"registry", "intercept"} {
		t.Run(mode, func(t *testing.T) {
			up := newHeldUpstream()
			s := startDrain(t, up, time.Minute)
			u := "http://" + s.proxy + "/v2/slow/app/tags/list"
			if mode == "intercept" {
				u = "https://" + registry + "/v2/slow/app/tags/list"
			}
			ch := get(s.client, u)
			select {
			case <-up.arrived:
			case a := <-ch:
				t.Fatalf("GET %s: %d %q %v before reaching the upstream", u, a.status, a.body, a.err)
			case <-time.After(30 * time.Second):
				t.Fatalf("GET %s did not reach the upstream", u)
			}
			s.cancel() // the stop signal
			select {
			case <-s.done:
				t.Fatalf("server.Run returned (%v) while a request was in flight", s.err)
			case <-time.After(500 * time.Millisecond):
			}
			// Stopping: no new connection is accepted, on any listener.
			for name, addr := range map[string]string{"registry": s.proxy, "intercept": s.intercept} {
				deadline := time.Now().Add(10 * time.Second)
				for {
					c, err := net.DialTimeout("tcp", addr, time.Second)
					if err != nil {
						break
					}
					c.Close()
					if time.Now().After(deadline) {
						t.Errorf("the %s listener still accepts connections after the stop signal", name)
						break
					}
					time.Sleep(20 * time.Millisecond)
				}
			}
			close(up.release)
			select {
			case a := <-ch:
				if a.err != nil || a.status != http.StatusOK || !strings.Contains(a.body, "slow/app") {
					t.Errorf("the request in flight at the stop got %d %q %v; want it to finish with 200", a.status, a.body, a.err)
				}
			case <-time.After(30 * time.Second):
				t.Error("the request in flight never finished")
			}
			select {
			case <-s.done:
				if s.err != nil {
					t.Errorf("server.Run after a clean drain: %v", s.err)
				}
			case <-time.After(30 * time.Second):
				t.Fatal("server.Run did not return after the request finished")
			}
		})
	}
}

// The drain is bounded by ShutdownTimeout on every listener: a request
// that never finishes is cut, and Run says so.
func TestShutdownTimeoutBoundsTheDrain(t *testing.T) {
	up := newHeldUpstream()
	const timeout = time.Second
	s := startDrain(t, up, timeout)
	var wg sync.WaitGroup
	for _, u := range []string{"http://" + s.proxy + "/v2/slow/app/tags/list", "https://" + registry + "/v2/slow/app/tags/list"} {
		ch := get(s.client, u)
		wg.Go(func() { <-ch })
		select {
		case <-up.arrived:
		case <-time.After(30 * time.Second):
			t.Fatalf("%s did not reach the upstream", u)
		}
	}
	start := time.Now()
	s.cancel()
	select {
	case <-s.done:
		err := s.err
		if took := time.Since(start); took < timeout || took > timeout+20*time.Second { // generous: a loaded 2-core CI machine
			t.Errorf("server.Run returned after %s; want about ShutdownTimeout (%s)", took, timeout)
		}
		if err == nil || !strings.Contains(err.Error(), "deadline exceeded") {
			t.Errorf("server.Run = %v; want the drain's deadline", err)
		}
		// Both listeners hit the deadline: the intercept listener's is not lost.
		if err != nil && !strings.Contains(err.Error(), "intercept") {
			t.Errorf("server.Run = %v; want the intercept listener's unfinished drain named", err)
		}
	case <-time.After(timeout + 30*time.Second):
		t.Fatal("server.Run did not return within ShutdownTimeout")
	}
	close(up.release)
	wg.Wait()
}
