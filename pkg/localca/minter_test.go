package localca

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ecrgate/ecrgate/pkg/ecrhost"
)

// clock is a settable test clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func TestMinterLeaf(t *testing.T) {
	ca := testCA(t)
	clk := &clock{t: epoch.Add(time.Hour)}
	m := NewMinter(ca, nil, clk.now)

	c, err := m.Leaf(testHost)
	if err != nil {
		t.Fatal(err)
	}
	leaf := c.Leaf
	if len(c.Certificate) != 2 || string(c.Certificate[1]) != string(ca.Certificate().Raw) {
		t.Error("chain is not [leaf, CA]")
	}
	if len(leaf.DNSNames) != 1 || leaf.DNSNames[0] != testHost || len(leaf.IPAddresses) != 0 {
		t.Errorf("DNSNames %v IPAddresses %v", leaf.DNSNames, leaf.IPAddresses)
	}
	if len(leaf.ExtKeyUsage) != 1 || leaf.ExtKeyUsage[0] != x509.ExtKeyUsageServerAuth || leaf.IsCA {
		t.Errorf("ExtKeyUsage %v IsCA %v", leaf.ExtKeyUsage, leaf.IsCA)
	}
	if got := leaf.NotAfter.Sub(leaf.NotBefore); got != LeafValidity+leafBackdate {
		t.Errorf("validity %v", got)
	}
	if !leaf.NotBefore.Equal(clk.now().Add(-leafBackdate)) {
		t.Errorf("NotBefore %v, want 5 minutes before now", leaf.NotBefore)
	}
	if leaf.SerialNumber.BitLen() < 64 || leaf.SerialNumber.BitLen() > 128 {
		t.Errorf("serial has %d bits", leaf.SerialNumber.BitLen())
	}
	if err := verifyAt(ca, leaf, testHost, clk.now()); err != nil {
		t.Error(err)
	}

	// Upper case and a trailing dot name the same host: same certificate.
	again, err := m.Leaf(strings.ToUpper(testHost) + ".")
	if err != nil || again != c {
		t.Errorf("second Leaf: %p, %v; want the cached %p", again, err, c)
	}

	// Close to expiry: minted again.
	clk.add(LeafValidity - 30*time.Minute)
	fresh, err := m.Leaf(testHost)
	if err != nil || fresh == c {
		t.Fatalf("Leaf near expiry: %p, %v; want a new certificate", fresh, err)
	}
	if !fresh.Leaf.NotAfter.After(clk.now().Add(23 * time.Hour)) {
		t.Errorf("re-minted leaf expires %v", fresh.Leaf.NotAfter)
	}
	// Long after expiry, too.
	clk.add(72 * time.Hour)
	if late, err := m.Leaf(testHost); err != nil || late == fresh {
		t.Errorf("Leaf after expiry: %p, %v; want a new certificate", late, err)
	}
	// A clock that went backwards before NotBefore: minted again.
	clk.add(-50 * time.Hour)
	if back, err := m.Leaf(testHost); err != nil || !back.Leaf.NotBefore.Before(clk.now()) {
		t.Errorf("Leaf after the clock went back: %v", err)
	}
}

func TestMinterRefuses(t *testing.T) {
	ca := testCA(t)
	allowed := "123456789012.dkr.ecr.eu-west-1.amazonaws.com"
	m := NewMinter(ca, func(h string) bool { return h == allowed || h == testHost }, func() time.Time { return epoch.Add(time.Hour) })
	for _, host := range []string{
		"example.com",
		"127.0.0.1",
		"s3.amazonaws.com",
		"api.ecr.us-east-1.amazonaws.com",
		"999999999999.dkr.ecr.us-east-1.amazonaws.com", // ECR, but allow says no
		ecrhost.PublicHost, // ECR Public, but allow says no
		"",
	} {
		c, err := m.Leaf(host)
		if c != nil || !errors.Is(err, ErrRefused) {
			t.Errorf("Leaf(%q) = %v, %v; want ErrRefused", host, c, err)
		}
	}
	if _, err := m.Leaf(allowed); err != nil {
		t.Errorf("Leaf(%s): %v", allowed, err)
	}

	_, err := m.GetCertificate(&tls.ClientHelloInfo{})
	if !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), "SNI") {
		t.Errorf("GetCertificate without SNI: %v", err)
	}
	if c, err := m.GetCertificate(&tls.ClientHelloInfo{ServerName: testHost}); err != nil || c.Leaf.DNSNames[0] != testHost {
		t.Errorf("GetCertificate(%s): %v", testHost, err)
	}
}

// TestMinterConcurrent checks that concurrent first requests for one host
// mint one certificate.
func TestMinterConcurrent(t *testing.T) {
	ca := testCA(t)
	m := NewMinter(ca, nil, func() time.Time { return epoch.Add(time.Hour) })
	var wg sync.WaitGroup
	certs := make([]*tls.Certificate, 32)
	var failed atomic.Int32
	for i := range certs {
		wg.Go(func() {
			c, err := m.Leaf(testHost)
			if err != nil {
				failed.Add(1)
			}
			certs[i] = c
		})
	}
	wg.Wait()
	if failed.Load() > 0 {
		t.Fatal("Leaf failed")
	}
	for _, c := range certs {
		if c != certs[0] {
			t.Fatal("concurrent requests minted more than one certificate")
		}
	}
}

// TestMinterCAExpiry checks that leaves never outlive the CA and that an
// expired CA gives an error saying what to do.
func TestMinterCAExpiry(t *testing.T) {
	ca := testCA(t)
	end := ca.Certificate().NotAfter
	m := NewMinter(ca, nil, func() time.Time { return end.Add(-3 * time.Hour) })
	c, err := m.Leaf(testHost)
	if err != nil {
		t.Fatal(err)
	}
	if c.Leaf.NotAfter.After(end) {
		t.Errorf("leaf expires %v, after the CA (%v)", c.Leaf.NotAfter, end)
	}
	m = NewMinter(ca, nil, func() time.Time { return end.Add(time.Minute) })
	if _, err := m.Leaf(testHost); err == nil || !strings.Contains(err.Error(), "ca init") {
		t.Errorf("Leaf with an expired CA: %v", err)
	}
}

// TestTLSHandshake serves TLS with the Minter on loopback and connects as
// Docker would: trusting only the CA, asking for the ECR host by name.
func TestTLSHandshake(t *testing.T) {
	// The real clock throughout: the handshake checks it.
	ca, err := Init(t.TempDir()+"/ca", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	m := NewMinter(ca, nil, nil)
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{GetCertificate: m.GetCertificate, MinVersion: tls.VersionTLS12})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	served := make(chan error, 4)
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer conn.Close()
				line, err := bufio.NewReader(conn).ReadString('\n')
				if err == nil {
					_, err = io.WriteString(conn, "echo "+line)
				}
				served <- err
			}()
		}
	}()

	roots := x509.NewCertPool()
	roots.AddCert(ca.Certificate())
	dial := func(serverName string) (*tls.Conn, error) {
		d := &net.Dialer{Timeout: 5 * time.Second}
		return tls.DialWithDialer(d, "tcp", ln.Addr().String(), &tls.Config{RootCAs: roots, ServerName: serverName})
	}

	conn, err := dial(testHost)
	if err != nil {
		t.Fatalf("handshake for %s: %v", testHost, err)
	}
	if _, err := io.WriteString(conn, "hello\n"); err != nil {
		t.Fatal(err)
	}
	got, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil || got != "echo hello\n" {
		t.Fatalf("read %q, %v", got, err)
	}
	state := conn.ConnectionState()
	if len(state.VerifiedChains) != 1 || len(state.VerifiedChains[0]) != 2 || state.PeerCertificates[0].DNSNames[0] != testHost {
		t.Errorf("verified chains %v", state.VerifiedChains)
	}
	conn.Close()
	if err := <-served; err != nil {
		t.Fatal(err)
	}

	// A client asking for another host gets no certificate at all.
	if c, err := dial("example.com"); err == nil {
		c.Close()
		t.Error("handshake for example.com succeeded")
	}
	// Nor does one asking by address (no SNI is sent for an IP).
	if c, err := dial("127.0.0.1"); err == nil {
		c.Close()
		t.Error("handshake without SNI succeeded")
	}
}
