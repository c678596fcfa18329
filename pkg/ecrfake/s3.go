package ecrfake

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/opencontainers/go-digest"
)

// ECR answers blob downloads with a redirect to a presigned URL on S3
// (prod-<region>-starport-layer-bucket); the client follows it itself, and
// the ECR token must never be sent there. With Options.BlobRedirect the
// emulator does the same: blob GETs get a 307 to its own "S3" listener (a
// second loopback port, so a different host), which serves the blob for a
// valid presigned URL and counts requests that arrive with an
// Authorization header.
type s3Server struct {
	e        *Emulator
	key      []byte
	url      string // http://127.0.0.1:port
	requests atomic.Int64
	withAuth atomic.Int64
}

const s3URLLifetime = 10 * time.Minute

func (s *s3Server) sign(path string, exp int64) string {
	m := hmac.New(sha256.New, s.key)
	fmt.Fprintf(m, "%s\n%d", path, exp)
	return hex.EncodeToString(m.Sum(nil))
}

// presign returns the S3 URL for a blob of a repository.
func (s *s3Server) presign(account, region, repo string, dg digest.Digest) string {
	path := "/prod-" + region + "-starport-layer-bucket/" + account + "/" + region + "/" + repo + "/" + dg.String()
	exp := s.e.opts.Now().Add(s3URLLifetime).Unix()
	q := url.Values{"X-Amz-Expires": {strconv.FormatInt(exp, 10)}, "X-Amz-Signature": {s.sign(path, exp)}}
	return s.url + path + "?" + q.Encode()
}

func (s *s3Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.requests.Add(1)
	if r.Header.Get("Authorization") != "" {
		s.withAuth.Add(1)
	}
	exp, _ := strconv.ParseInt(r.URL.Query().Get("X-Amz-Expires"), 10, 64)
	if !hmac.Equal([]byte(s.sign(r.URL.Path, exp)), []byte(r.URL.Query().Get("X-Amz-Signature"))) || s.e.opts.Now().Unix() > exp {
		http.Error(w, "<Error><Code>AccessDenied</Code><Message>Request has expired or the signature does not match</Message></Error>", http.StatusForbidden)
		return
	}
	// /prod-<region>-starport-layer-bucket/<account>/<region>/<repo...>/<digest>
	parts := strings.Split(strings.TrimPrefix(r.URL.Path, "/"), "/")
	if len(parts) < 5 {
		http.NotFound(w, r)
		return
	}
	account, region, dgs := parts[1], parts[2], parts[len(parts)-1]
	repo := strings.Join(parts[3:len(parts)-1], "/")
	dg, err := digest.Parse(dgs)
	if err != nil {
		http.NotFound(w, r)
		return
	}
	reg, err := s.e.data.registry(account, region)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	rp, err := s.e.data.repo(r.Context(), reg, repo)
	if err != nil {
		http.NotFound(w, r)
		return
	}
	rc, err := rp.Blobs(r.Context()).Open(r.Context(), dg)
	if err != nil {
		http.NotFound(w, r)
		return
	}
	defer rc.Close()
	w.Header().Set("Content-Type", "application/octet-stream")
	http.ServeContent(w, r, "", time.Time{}, rc)
}

// startS3 runs the S3 listener until ctx ends.
func (e *Emulator) startS3(ctx context.Context) error {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return fmt.Errorf("emulator S3 listener: %w", err)
	}
	e.s3 = &s3Server{e: e, key: []byte(randomHex(32)), url: "http://" + ln.Addr().String()}
	srv := &http.Server{Handler: e.s3, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			e.log.Error("emulator S3 listener", "err", err)
		}
	}()
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	return nil
}

// S3Requests is how many requests the emulator's S3 received, and how many
// of them carried an Authorization header (which must be none: the ECR
// token must not leave ECR).
func (e *Emulator) S3Requests() (total, withAuthorization int64) {
	if e.s3 == nil {
		return 0, 0
	}
	return e.s3.requests.Load(), e.s3.withAuth.Load()
}

// redirectBlob answers a blob GET with a 307 to S3, as ECR does, when the
// blob exists in the repository.
func (d *dataPlane) redirectBlob(w http.ResponseWriter, r *http.Request, reg *dataRegistry, account, region string, rt route) bool {
	if d.e.s3 == nil {
		return false
	}
	dg, err := digest.Parse(rt.ref)
	if err != nil {
		return false
	}
	rp, err := d.repo(r.Context(), reg, rt.name)
	if err != nil {
		return false
	}
	if _, err := rp.Blobs(r.Context()).Stat(r.Context(), dg); err != nil {
		return false // distribution answers BLOB_UNKNOWN
	}
	w.Header().Set("Location", d.e.s3.presign(account, region, rt.name, dg))
	w.WriteHeader(http.StatusTemporaryRedirect)
	return true
}
