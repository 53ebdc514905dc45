package webhooks

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/boomerang-dev/boomerang/egress"
)

// timeoutErr is a net.Error that timed out.
type timeoutErr struct{}

func (timeoutErr) Error() string   { return "i/o timeout" }
func (timeoutErr) Timeout() bool   { return true }
func (timeoutErr) Temporary() bool { return true }

func urlErr(err error) error {
	return &url.Error{Op: "Post", URL: "http://receiver.example/hook", Err: err}
}

func dialErr(err error) error {
	return urlErr(&net.OpError{Op: "dial", Net: "tcp", Err: err})
}

func TestClassify(t *testing.T) {
	blocked := &egress.BlockedError{Addr: netip.MustParseAddr("127.0.0.1"), Reason: "loopback"}
	tests := []struct {
		name      string
		err       error
		wantClass string
		wantMsg   string // "" means any
	}{
		{"blocked in url.Error", dialErr(blocked), ClassBlocked, blocked.Error()},
		{"dns", urlErr(&net.OpError{Op: "dial", Net: "tcp", Err: &net.DNSError{Err: "no such host", Name: "nope.invalid", IsNotFound: true}}),
			ClassDNS, "DNS lookup failed: no such host"},
		{"dns timeout is still dns", urlErr(&net.DNSError{Err: "i/o timeout", Name: "slow.example", IsTimeout: true}),
			ClassDNS, "DNS lookup failed: i/o timeout"},
		{"deadline exceeded", urlErr(context.DeadlineExceeded), ClassTimeout, "no answer within the delivery timeout"},
		{"wrapped deadline", fmt.Errorf("reading: %w", context.DeadlineExceeded), ClassTimeout, "no answer within the delivery timeout"},
		{"net.Error timeout", urlErr(timeoutErr{}), ClassTimeout, "no answer within the delivery timeout"},
		{"unknown authority", urlErr(x509.UnknownAuthorityError{}), ClassTLS, "x509: certificate signed by unknown authority"},
		{"certificate verification", urlErr(&tls.CertificateVerificationError{Err: x509.UnknownAuthorityError{}}), ClassTLS,
			"tls: failed to verify certificate: x509: certificate signed by unknown authority"},
		{"hostname mismatch", urlErr(x509.HostnameError{Certificate: &x509.Certificate{DNSNames: []string{"other.example"}}, Host: "receiver.example"}),
			ClassTLS, ""},
		{"record header", urlErr(tls.RecordHeaderError{Msg: "first record does not look like a TLS handshake"}), ClassTLS,
			"tls: first record does not look like a TLS handshake"},
		{"tls alert text", urlErr(errors.New("remote error: tls: handshake failure")), ClassTLS, "remote error: tls: handshake failure"},
		{"connection refused", dialErr(&os.SyscallError{Syscall: "connect", Err: syscall.ECONNREFUSED}), ClassConnect, "connection refused"},
		{"connection reset", urlErr(&net.OpError{Op: "read", Net: "tcp", Err: &os.SyscallError{Syscall: "read", Err: syscall.ECONNRESET}}),
			ClassConnect, "connection reset by the receiver"},
		{"EOF", urlErr(io.EOF), ClassConnect, "EOF"},
		{"plain error", errors.New("something odd"), ClassConnect, "something odd"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			class, msg := classify(tt.err)
			if class != tt.wantClass || (tt.wantMsg != "" && msg != tt.wantMsg) {
				t.Errorf("classify(%v) = %q, %q, want %q, %q", tt.err, class, msg, tt.wantClass, tt.wantMsg)
			}
			if msg == "" {
				t.Errorf("classify(%v) gave an empty message", tt.err)
			}
		})
	}
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2025, 6, 1, 10, 0, 0, 0, time.UTC)
	tests := []struct {
		in   string
		want time.Duration
	}{
		{"", 0},
		{"7", 7 * time.Second},
		{" 12 ", 12 * time.Second},
		{"0", 0},
		{"-5", 0},
		{"1.5", 0},
		{"garbage", 0},
		{"99999999999", 365 * 24 * time.Hour},
		{now.Add(90 * time.Second).Format(http.TimeFormat), 90 * time.Second},
		{now.Add(2 * time.Hour).Format(time.RFC850), 2 * time.Hour},
		{now.Add(3 * time.Minute).Format(time.ANSIC), 3 * time.Minute},
		{now.Format(http.TimeFormat), 0},
		{now.Add(-time.Hour).Format(http.TimeFormat), 0},
		{"Sun, 32 Jun 2025 10:00:00 GMT", 0},
	}
	for _, tt := range tests {
		if got := parseRetryAfter(tt.in, now); got != tt.want {
			t.Errorf("parseRetryAfter(%q, %v) = %v, want %v", tt.in, now, got, tt.want)
		}
	}
}
