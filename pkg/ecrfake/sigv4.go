package ecrfake

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"
)

// sigv4Request is what the Authorization header of a SigV4-signed request
// claims: who signed, for which scope, over which headers.
type sigv4Request struct {
	AccessKey     string
	Date          string // yyyymmdd from the credential scope
	Region        string
	Service       string
	SignedHeaders []string
	Signature     string
	AmzDate       string // X-Amz-Date (or Date) header
}

// errSig carries the AWS exception a signature failure maps to.
type errSig struct {
	Type    string
	Message string
}

func (e *errSig) Error() string { return e.Type + ": " + e.Message }

const sigv4Algorithm = "AWS4-HMAC-SHA256"

// parseSigV4 reads the Authorization header. A request without one gets
// MissingAuthenticationTokenException, which is what AWS JSON services answer
// to an unsigned request; an unknown key is UnrecognizedClientException (see
// the caller) and a wrong secret InvalidSignatureException.
func parseSigV4(r *http.Request) (*sigv4Request, error) {
	h := r.Header.Get("Authorization")
	if h == "" {
		return nil, &errSig{"MissingAuthenticationTokenException", "Missing Authentication Token"}
	}
	if !strings.HasPrefix(h, sigv4Algorithm+" ") {
		return nil, &errSig{"IncompleteSignatureException", "Authorization header requires the " + sigv4Algorithm + " algorithm."}
	}
	s := &sigv4Request{}
	for _, part := range strings.Split(strings.TrimPrefix(h, sigv4Algorithm+" "), ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok {
			continue
		}
		switch k {
		case "Credential":
			f := strings.Split(v, "/")
			if len(f) != 5 || f[4] != "aws4_request" {
				return nil, &errSig{"IncompleteSignatureException", "Credential must have exactly 5 slash-delimited elements, e.g. keyid/date/region/service/term, got '" + v + "'"}
			}
			s.AccessKey, s.Date, s.Region, s.Service = f[0], f[1], f[2], f[3]
		case "SignedHeaders":
			s.SignedHeaders = strings.Split(v, ";")
		case "Signature":
			s.Signature = v
		}
	}
	if s.AccessKey == "" || len(s.SignedHeaders) == 0 || s.Signature == "" {
		return nil, &errSig{"IncompleteSignatureException", "Authorization header requires 'Credential', 'SignedHeaders' and 'Signature' parameters."}
	}
	s.AmzDate = r.Header.Get("X-Amz-Date")
	if s.AmzDate == "" {
		return nil, &errSig{"IncompleteSignatureException", "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header."}
	}
	return s, nil
}

// verifySigV4 recomputes the signature of r (whose body is body) with secret
// and compares it with the one the client sent, following the SigV4 spec.
func verifySigV4(r *http.Request, body []byte, s *sigv4Request, secret string, now time.Time) error {
	t, err := time.Parse("20060102T150405Z", s.AmzDate)
	if err != nil {
		return &errSig{"IncompleteSignatureException", "Date must be in ISO-8601 'basic format'. Got '" + s.AmzDate + "'."}
	}
	if d := now.Sub(t); d > 15*time.Minute || d < -15*time.Minute {
		return &errSig{"InvalidSignatureException", fmt.Sprintf("Signature expired: %s is now earlier than %s (%s - 15 min.)",
			s.AmzDate, now.Add(-15*time.Minute).UTC().Format("20060102T150405Z"), now.UTC().Format("20060102T150405Z"))}
	}
	if s.Date != s.AmzDate[:8] {
		return &errSig{"InvalidSignatureException", "Credential should be scoped to a valid date, not '" + s.Date + "'."}
	}
	payload := sha256.Sum256(body)
	payloadHex := hex.EncodeToString(payload[:])
	if h := r.Header.Get("X-Amz-Content-Sha256"); h != "" && h != "UNSIGNED-PAYLOAD" && h != payloadHex {
		return &errSig{"InvalidSignatureException", "The provided 'x-amz-content-sha256' header does not match what was computed."}
	}
	canon := canonicalRequest(r, s.SignedHeaders, payloadHex)
	scope := strings.Join([]string{s.Date, s.Region, s.Service, "aws4_request"}, "/")
	ch := sha256.Sum256([]byte(canon))
	toSign := sigv4Algorithm + "\n" + s.AmzDate + "\n" + scope + "\n" + hex.EncodeToString(ch[:])
	key := hmacSHA256([]byte("AWS4"+secret), s.Date)
	key = hmacSHA256(key, s.Region)
	key = hmacSHA256(key, s.Service)
	key = hmacSHA256(key, "aws4_request")
	want := hex.EncodeToString(hmacSHA256(key, toSign))
	if !hmac.Equal([]byte(want), []byte(s.Signature)) {
		return &errSig{"InvalidSignatureException", "The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method. Consult the service documentation for details."}
	}
	return nil
}

func hmacSHA256(key []byte, data string) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(data))
	return m.Sum(nil)
}

func canonicalRequest(r *http.Request, signed []string, payloadHex string) string {
	var b strings.Builder
	b.WriteString(r.Method + "\n")
	path := r.URL.EscapedPath()
	if path == "" {
		path = "/"
	}
	// Services other than S3 escape the already escaped path once more.
	b.WriteString(uriEncode(path, false) + "\n")
	b.WriteString(canonicalQuery(r.URL.Query()) + "\n")
	for _, h := range signed {
		b.WriteString(h + ":" + headerValue(r, h) + "\n")
	}
	b.WriteString("\n" + strings.Join(signed, ";") + "\n" + payloadHex)
	return b.String()
}

func headerValue(r *http.Request, name string) string {
	switch name {
	case "host":
		return r.Host
	case "content-length":
		if v := r.Header.Get("Content-Length"); v != "" {
			return v
		}
		return strconv.FormatInt(r.ContentLength, 10)
	}
	vals := r.Header.Values(name)
	out := make([]string, len(vals))
	for i, v := range vals {
		out[i] = strings.Join(strings.Fields(v), " ")
	}
	return strings.Join(out, ",")
}

func canonicalQuery(q url.Values) string {
	type kv struct{ k, v string }
	var pairs []kv
	for k, vs := range q {
		for _, v := range vs {
			pairs = append(pairs, kv{uriEncode(k, true), uriEncode(v, true)})
		}
	}
	sort.Slice(pairs, func(i, j int) bool {
		if pairs[i].k != pairs[j].k {
			return pairs[i].k < pairs[j].k
		}
		return pairs[i].v < pairs[j].v
	})
	parts := make([]string, len(pairs))
	for i, p := range pairs {
		parts[i] = p.k + "=" + p.v
	}
	return strings.Join(parts, "&")
}

// uriEncode is SigV4's UriEncode: everything but unreserved characters is
// percent-encoded with upper-case hex; '/' is kept unless encodeSlash.
func uriEncode(s string, encodeSlash bool) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'A' && c <= 'Z', c >= 'a' && c <= 'z', c >= '0' && c <= '9', c == '-', c == '_', c == '.', c == '~':
			b.WriteByte(c)
		case c == '/' && !encodeSlash:
			b.WriteByte(c)
		default:
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	return b.String()
}
