package route

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"syscall"
	"testing"
)

type timeoutErr struct{}

func (timeoutErr) Error() string   { return "i/o timeout" }
func (timeoutErr) Timeout() bool   { return true }
func (timeoutErr) Temporary() bool { return true }

// TestConnectFailed: only failures where nothing reached the printer may go on to the relay.
func TestConnectFailed(t *testing.T) {
	t.Parallel()
	dial := func(err error) error { return &net.OpError{Op: "dial", Net: "tcp", Err: err} }
	for _, tc := range []struct {
		name string
		err  error
		want bool
	}{
		{"refused", dial(os.NewSyscallError("connect", syscall.ECONNREFUSED)), true},
		{"no route", dial(os.NewSyscallError("connect", syscall.EHOSTUNREACH)), true},
		{"network unreachable", dial(os.NewSyscallError("connect", syscall.ENETUNREACH)), true},
		{"connect timeout (300 ms)", dial(timeoutErr{}), true},
		{"wrapped by the transport", &url.Error{Op: "Get", URL: "http://x", Err: dial(timeoutErr{})}, true},
		{"reset after the request was written", &net.OpError{Op: "read", Net: "tcp", Err: syscall.ECONNRESET}, false},
		{"eof mid-answer", fmt.Errorf("readLoop: %w", io.ErrUnexpectedEOF), false},
		{"client went away", context.Canceled, false},
		{"none", nil, false},
	} {
		if got := ConnectFailed(tc.err); got != tc.want {
			t.Errorf("%s: ConnectFailed = %v, want %v", tc.name, got, tc.want)
		}
	}
	if ConnectFailed(errors.New("dial tcp: lookup printer.local: no such host")) {
		t.Error("a bare string is not a connect failure")
	}
}
