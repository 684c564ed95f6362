package daemon

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"time"

	"github.com/oeproxy/oeproxy/appapi"
	"github.com/oeproxy/oeproxy/credstore"
	"github.com/oeproxy/oeproxy/portalflow"
)

// SocketName is the control socket's file name inside the data directory.
const SocketName = "oeproxy.sock"

// Control is what the command line asks of oeproxy. The same interface is served by the running daemon over the
// control socket and, when no daemon runs, by the store directly, so the user sees the same result either way.
type Control interface {
	List(ctx context.Context) ([]credstore.PublicRecord, error)
	Add(ctx context.Context, req AddRequest) (credstore.PublicRecord, error)
	Remove(ctx context.Context, name string) (credstore.PublicRecord, error)
	Change(ctx context.Context, name string, ch Change) (credstore.PublicRecord, error)
	AppControl
	LANControl
	MQTTControl
}

// AddRequest stores a new App Connection from a validated portal completion.
type AddRequest struct {
	Completion portalflow.Completion `json:"completion"`
	// Name is the local name; empty: a slug of the printer name.
	Name string `json:"name,omitempty"`
	// Port is the local port; 0: the next free one from listen.port_base.
	Port int `json:"port,omitempty"`
	// PrinterID is the OctoEverywhere printer ID when discovered.
	PrinterID string `json:"printer_id,omitempty"`
	// Route is relay, lan or auto (connect --route); empty: the config key route.
	Route string `json:"route,omitempty"`
	// LANURL is the printer's LAN address (connect --printer-url); empty: none set.
	LANURL string `json:"lan_url,omitempty"`
	// Platform is connect --platform; empty: what the OctoEverywhere plugin reports.
	Platform string `json:"platform,omitempty"`
	// FrontAPIKey is the key connect shows once; stored only when the platform gets the OctoPrint front.
	FrontAPIKey string `json:"front_api_key,omitempty"`
}

// Error kinds carried over the control socket, so the client returns the same sentinel errors as the store.
var (
	ErrConflict = errors.New("already taken")
	ErrNotFound = errors.New("no such printer")
	ErrInvalid  = errors.New("invalid request")
)

// errorBody is the JSON error of the control API.
type errorBody struct {
	Error string `json:"error"`
	// Kinds name the sentinel errors the daemon's error matched (errorKinds), so that errors.Is gives the same
	// answer on the client side as in the daemon, and the message stays word for word the same.
	Kinds []string `json:"kinds,omitempty"`
	// Kind is the first of Kinds (older clients read it).
	Kind string `json:"kind,omitempty"`
	// Code is the OctoEverywhere code (600-613) the error carries, so errors.Is works on the client side.
	Code int `json:"oe_code,omitempty"`
}

// errorKinds are the sentinel errors that cross the control socket by name, each with the HTTP status the
// daemon answers with when it is the first one an error matches.
var errorKinds = []struct {
	kind   string
	status int
	err    error
}{
	{"bad_argument", http.StatusBadRequest, appapi.ErrInvalidArgument},
	{"rate_limited", http.StatusTooManyRequests, appapi.ErrRateLimited},
	{"not_found", http.StatusNotFound, ErrNotFound},
	{"store_not_found", http.StatusNotFound, credstore.ErrNotFound},
	{"conflict", http.StatusConflict, ErrConflict},
	{"name_taken", http.StatusConflict, credstore.ErrNameTaken},
	{"port_taken", http.StatusConflict, credstore.ErrPortTaken},
	{"duplicate", http.StatusConflict, credstore.ErrDuplicate},
	{"exists", http.StatusConflict, credstore.ErrExists},
	{"invalid", http.StatusBadRequest, ErrInvalid},
	{"store_invalid", http.StatusBadRequest, credstore.ErrInvalid},
	{"corrupt", http.StatusInternalServerError, credstore.ErrCorrupt},
}

// kindsOf names the sentinels err matches and picks the reply's status.
func kindsOf(err error) ([]string, int) {
	var kinds []string
	status := 0
	for _, k := range errorKinds {
		if errors.Is(err, k.err) {
			kinds = append(kinds, k.kind)
			if status == 0 {
				status = k.status
			}
		}
	}
	switch {
	case status != 0:
	case appapi.CodeOf(err) != 0:
		status = http.StatusBadGateway
	default:
		status = http.StatusInternalServerError
	}
	return kinds, status
}

// remoteError is an error that crossed the control socket: the daemon's message, and the sentinels (and
// OctoEverywhere code) it matched there, so that errors.Is works on the client side as in the daemon.
type remoteError struct {
	msg  string
	errs []error
}

func (e *remoteError) Error() string   { return e.msg }
func (e *remoteError) Unwrap() []error { return e.errs }

// errorFromBody rebuilds the daemon's error from its reply.
func errorFromBody(e errorBody) error {
	kinds := e.Kinds
	if len(kinds) == 0 && e.Kind != "" {
		kinds = []string{e.Kind}
	}
	var errs []error
	for _, name := range kinds {
		for _, k := range errorKinds {
			if k.kind == name {
				errs = append(errs, k.err)
			}
		}
	}
	if e.Code != 0 {
		errs = append(errs, &appapi.OEError{Code: e.Code})
	}
	return &remoteError{msg: e.Error, errs: errs}
}

// ControlHandler serves c as the control API (HTTP over the unix socket; the socket's 0600 mode is the
// authentication, as with dockerd or tailscaled).
func ControlHandler(c Control) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/printers", func(w http.ResponseWriter, r *http.Request) {
		list, err := c.List(r.Context())
		reply(w, list, err)
	})
	mux.HandleFunc("POST /v1/printers", func(w http.ResponseWriter, r *http.Request) {
		var req AddRequest
		if err := json.NewDecoder(io.LimitReader(r.Body, 1<<20)).Decode(&req); err != nil {
			reply(w, nil, fmt.Errorf("%w: %v", ErrInvalid, err))
			return
		}
		rec, err := c.Add(r.Context(), req)
		reply(w, rec, err)
	})
	mux.HandleFunc("DELETE /v1/printers/{name}", func(w http.ResponseWriter, r *http.Request) {
		rec, err := c.Remove(r.Context(), r.PathValue("name"))
		reply(w, rec, err)
	})
	mux.HandleFunc("PATCH /v1/printers/{name}", func(w http.ResponseWriter, r *http.Request) {
		var ch Change
		if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20)).Decode(&ch); err != nil {
			reply(w, nil, fmt.Errorf("%w: %v", ErrInvalid, err))
			return
		}
		rec, err := c.Change(r.Context(), r.PathValue("name"), ch)
		reply(w, rec, err)
	})
	mux.HandleFunc("GET /v1/ping", func(w http.ResponseWriter, r *http.Request) {
		reply(w, map[string]int{"pid": os.Getpid()}, nil)
	})
	appRoutes(mux, c)
	lanRoutes(mux, c)
	mqttRoutes(mux, c)
	return mux
}

func reply(w http.ResponseWriter, v any, err error) {
	w.Header().Set("Content-Type", "application/json")
	if err != nil {
		kinds, status := kindsOf(err)
		body := errorBody{Error: err.Error(), Kinds: kinds, Code: appapi.CodeOf(err)}
		if len(kinds) > 0 {
			body.Kind = kinds[0]
		}
		w.WriteHeader(status)
		_ = json.NewEncoder(w).Encode(body)
		return
	}
	_ = json.NewEncoder(w).Encode(v)
}

// ListenControl creates the control socket at path with mode 0600. A stale socket (left by a crash) is removed;
// a live one means another daemon serves this data directory.
func ListenControl(path string) (net.Listener, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("create the data directory for the control socket: %w", err)
	}
	if _, err := os.Lstat(path); err == nil {
		if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
			c.Close()
			return nil, fmt.Errorf("control socket %s is served by another oeproxy: stop it first", path)
		}
		if err := os.Remove(path); err != nil {
			return nil, fmt.Errorf("remove stale control socket %s: %w", path, err)
		}
	}
	if err := prepareSocketDir(path, true); err != nil {
		return nil, err
	}
	l, err := listenPrivate(path)
	if err != nil {
		return nil, fmt.Errorf("listen on control socket %s: %w", path, err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		l.Close()
		return nil, fmt.Errorf("restrict control socket %s to its owner: %w", path, err)
	}
	return l, nil
}

// ControlClient talks to a running daemon over its control socket.
type ControlClient struct {
	path string
	hc   *http.Client
}

// ErrNoDaemon means no daemon answers on the control socket; the caller opens the store itself.
var ErrNoDaemon = errors.New("no oeproxy daemon is running")

// ErrNoAnswer means a change was sent to the daemon but its answer was lost (the daemon stopped half-way): the
// change may or may not have been made. The caller looks before it tries again.
var ErrNoAnswer = errors.New("the daemon stopped before it answered, so it is not known whether the change was made")

// DialControl connects to the daemon's socket at path, or returns ErrNoDaemon.
func DialControl(ctx context.Context, path string) (*ControlClient, error) {
	if err := prepareSocketDir(path, false); errors.Is(err, fs.ErrNotExist) {
		return nil, ErrNoDaemon
	} else if err != nil {
		return nil, err
	}
	c := &ControlClient{path: path, hc: &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", path)
		},
	}}}
	pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if err := c.do(pctx, http.MethodGet, "/v1/ping", nil, nil); err != nil {
		var ne *net.OpError
		if errors.As(err, &ne) || errors.Is(err, os.ErrNotExist) {
			return nil, ErrNoDaemon
		}
		return nil, err
	}
	return c, nil
}

// Close releases idle connections.
func (c *ControlClient) Close() { c.hc.CloseIdleConnections() }

func (c *ControlClient) do(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, "http://oeproxy"+path, body)
	if err != nil {
		return err
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		var ne *net.OpError
		if method != http.MethodGet && ctx.Err() == nil && !(errors.As(err, &ne) && ne.Op == "dial") {
			return fmt.Errorf("%w: %w", ErrNoAnswer, err)
		}
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		var e errorBody
		if json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&e) != nil || e.Error == "" {
			return fmt.Errorf("daemon answered %s on the control socket %s", resp.Status, c.path)
		}
		return errorFromBody(e)
	}
	if out == nil {
		return nil
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		if method != http.MethodGet {
			return fmt.Errorf("%w: %w", ErrNoAnswer, err)
		}
		return err
	}
	return nil
}

// List implements Control.
func (c *ControlClient) List(ctx context.Context) ([]credstore.PublicRecord, error) {
	var out []credstore.PublicRecord
	return out, c.do(ctx, http.MethodGet, "/v1/printers", nil, &out)
}

// Add implements Control.
func (c *ControlClient) Add(ctx context.Context, req AddRequest) (credstore.PublicRecord, error) {
	var out credstore.PublicRecord
	return out, c.do(ctx, http.MethodPost, "/v1/printers", req, &out)
}

// Change implements Control.
func (c *ControlClient) Change(ctx context.Context, name string, ch Change) (credstore.PublicRecord, error) {
	var out credstore.PublicRecord
	return out, c.do(ctx, http.MethodPatch, "/v1/printers/"+url.PathEscape(name), ch, &out)
}

// Remove implements Control.
func (c *ControlClient) Remove(ctx context.Context, name string) (credstore.PublicRecord, error) {
	var out credstore.PublicRecord
	return out, c.do(ctx, http.MethodDelete, "/v1/printers/"+url.PathEscape(name), nil, &out)
}
