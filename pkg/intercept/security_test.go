package intercept_test

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ecrgate/ecrgate/pkg/intercept"
	"github.com/ecrgate/ecrgate/pkg/localca"
)

// countingMinter wraps the real local-CA minter and records every host it
// is asked for.
type countingMinter struct {
	m     *localca.Minter
	mu    sync.Mutex
	asked []string
}

func (c *countingMinter) GetCertificate(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
	c.mu.Lock()
	c.asked = append(c.asked, hello.ServerName)
	c.mu.Unlock()
	return c.m.GetCertificate(hello)
}

func (c *countingMinter) hosts() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.asked...)
}

// Only the allowed ECR host on port 443 is decrypted: a CONNECT to an ECR
// host of another account, to another host, or to the allowed host on
// another port never reaches the minter. With tunnel_others the client
// sees the origin's own certificate; without, the CONNECT is refused and
// nothing is dialled. A client that names another host in its SNI gets no
// certificate.
func TestOnlyAllowedHostsAreDecrypted(t *testing.T) {
	ca, err := localca.Init(filepath.Join(t.TempDir(), "ca"), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	allowed := func(host string) bool { return host == ecrHost }
	const otherECR = "999999999999.dkr.ecr.us-east-1.amazonaws.com"
	origin := httptest.NewTLSServer(http.NotFoundHandler())
	defer origin.Close()
	originAddr := origin.Listener.Addr().String()
	theirs := x509.NewCertPool()
	theirs.AddCert(origin.Certificate())
	ours := x509.NewCertPool()
	ours.AddCert(ca.Certificate())

	others := []struct{ authority, sni string }{
		{otherECR + ":443", otherECR},
		{"example.com:443", "example.com"},
		{ecrHost + ":8443", ecrHost},
		{"sts.us-east-1.amazonaws.com:443", "sts.us-east-1.amazonaws.com"},
	}
	redirect := map[string]string{}
	for _, o := range others {
		redirect[o.authority] = originAddr
	}

	for _, tunnel := range []bool{true, false} {
		name := "tunnel_others"
		if !tunnel {
			name = "no tunnel_others"
		}
		t.Run(name, func(t *testing.T) {
			minter := &countingMinter{m: localca.NewMinter(ca, allowed, time.Now)}
			p := startProxy(t, intercept.Options{
				Intercept:    allowed,
				TLSConfig:    &tls.Config{GetCertificate: minter.GetCertificate},
				Handler:      http.NotFoundHandler(),
				TunnelOthers: tunnel,
			}, redirect)
			for _, o := range others {
				conn := tls.Client(eagerConnect(t, p.addr, o.authority), &tls.Config{ServerName: o.sni, RootCAs: theirs, InsecureSkipVerify: true})
				_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
				err := conn.Handshake()
				switch {
				case tunnel && err != nil:
					t.Errorf("CONNECT %s: handshake through the tunnel: %v", o.authority, err)
				case tunnel && !bytes.Equal(conn.ConnectionState().PeerCertificates[0].Raw, origin.Certificate().Raw):
					t.Errorf("CONNECT %s: the client did not see the origin's certificate", o.authority)
				case !tunnel && (err == nil || !strings.Contains(err.Error(), "403")):
					t.Errorf("CONNECT %s without tunnel_others: %v; want 403", o.authority, err)
				}
				conn.Close()
			}
			if got := minter.hosts(); len(got) != 0 {
				t.Errorf("the minter was asked for %v; want nothing but the allowed host", got)
			}
			if !tunnel && len(p.dials.dialled()) != 0 {
				t.Errorf("dialled %v with tunnel_others off", p.dials.dialled())
			}

			// SNI naming another host inside the allowed CONNECT: refused
			// before the minter is asked.
			conn := tls.Client(eagerConnect(t, p.addr, ecrHost+":443"), &tls.Config{ServerName: otherECR, RootCAs: ours})
			_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
			if err := conn.Handshake(); err == nil {
				t.Errorf("SNI %s inside CONNECT %s: handshake succeeded", otherECR, ecrHost)
			}
			conn.Close()
			if got := minter.hosts(); len(got) != 0 {
				t.Errorf("the minter was asked for %v after an SNI mismatch", got)
			}

			// The allowed host is decrypted with a leaf of the local CA.
			conn = tls.Client(eagerConnect(t, p.addr, ecrHost+":443"), &tls.Config{ServerName: ecrHost, RootCAs: ours})
			_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
			if err := conn.Handshake(); err != nil {
				t.Fatalf("CONNECT %s: %v", ecrHost, err)
			}
			conn.Close()
			if got := minter.hosts(); len(got) != 1 || got[0] != ecrHost {
				t.Errorf("the minter was asked for %v; want [%s]", got, ecrHost)
			}
		})
	}
}
