package control

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
	"time"

	"github.com/oeproxy/oeproxy/appapi"
	"github.com/oeproxy/oeproxy/credstore"
)

// Client talks to a running daemon over its control socket. It implements Control.
type Client struct {
	path string
	hc   *http.Client
}

var _ Control = (*Client)(nil)

// Dial connects to the daemon's socket at path, or returns ErrNoDaemon.
func Dial(ctx context.Context, path string) (*Client, error) {
	if err := prepareSocketDir(path, false); errors.Is(err, fs.ErrNotExist) {
		return nil, ErrNoDaemon
	} else if err != nil {
		return nil, err
	}
	c := &Client{path: path, hc: &http.Client{Transport: &http.Transport{
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
func (c *Client) Close() { c.hc.CloseIdleConnections() }

func (c *Client) do(ctx context.Context, method, path string, in, out any) error {
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

func printerPath(name string) string { return "/v1/printers/" + url.PathEscape(name) }

// List implements Control.
func (c *Client) List(ctx context.Context) ([]credstore.PublicRecord, error) {
	var out []credstore.PublicRecord
	return out, c.do(ctx, http.MethodGet, "/v1/printers", nil, &out)
}

// Add implements Control.
func (c *Client) Add(ctx context.Context, req AddRequest) (credstore.PublicRecord, error) {
	var out credstore.PublicRecord
	return out, c.do(ctx, http.MethodPost, "/v1/printers", req, &out)
}

// Change implements Control.
func (c *Client) Change(ctx context.Context, name string, ch Change) (credstore.PublicRecord, error) {
	var out credstore.PublicRecord
	return out, c.do(ctx, http.MethodPatch, printerPath(name), ch, &out)
}

// Remove implements Control.
func (c *Client) Remove(ctx context.Context, name string) (credstore.PublicRecord, error) {
	var out credstore.PublicRecord
	return out, c.do(ctx, http.MethodDelete, printerPath(name), nil, &out)
}

// Status implements AppControl.
func (c *Client) Status(ctx context.Context, name string) ([]PrinterStatus, error) {
	var out []PrinterStatus
	path := "/v1/status"
	if name != "" {
		path += "?name=" + url.QueryEscape(name)
	}
	return out, c.do(ctx, http.MethodGet, path, nil, &out)
}

// LiveLink implements AppControl.
func (c *Client) LiveLink(ctx context.Context, name string, req appapi.LiveLinkRequest) (*appapi.LiveLink, error) {
	var out appapi.LiveLink
	err := c.do(ctx, http.MethodPost, printerPath(name)+"/livelink",
		liveLinkBody{Hours: req.Hours, UntilPrintDone: req.UntilPrintDone}, &out)
	if err != nil {
		return nil, err
	}
	return &out, nil
}

// Gadget implements AppControl.
func (c *Client) Gadget(ctx context.Context, name string) (*appapi.GadgetStatus, error) {
	var out appapi.GadgetStatus
	if err := c.do(ctx, http.MethodPost, printerPath(name)+"/gadget", struct{}{}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// SetWebhook implements AppControl.
func (c *Client) SetWebhook(ctx context.Context, name, webhookURL string, events []appapi.EventType) (WebhookInfo, error) {
	b := webhookBody{URL: webhookURL}
	for _, e := range events {
		b.Events = append(b.Events, int(e))
	}
	var out WebhookInfo
	return out, c.do(ctx, http.MethodPut, printerPath(name)+"/webhook", b, &out)
}

// DeleteWebhook implements AppControl.
func (c *Client) DeleteWebhook(ctx context.Context, name string) error {
	return c.do(ctx, http.MethodDelete, printerPath(name)+"/webhook", nil, nil)
}

// TestWebhook implements AppControl.
func (c *Client) TestWebhook(ctx context.Context, name string) (*appapi.WebhookTest, error) {
	var out appapi.WebhookTest
	if err := c.do(ctx, http.MethodPost, printerPath(name)+"/webhook/test", struct{}{}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// SetLAN implements LANControl.
func (c *Client) SetLAN(ctx context.Context, name string, req LANRequest) (credstore.PublicRecord, error) {
	var out credstore.PublicRecord
	return out, c.do(ctx, http.MethodPut, printerPath(name)+"/lan", req, &out)
}

// SetMQTT implements MQTTControl.
func (c *Client) SetMQTT(ctx context.Context, name string, req MQTTRequest) (credstore.PublicRecord, error) {
	var out credstore.PublicRecord
	return out, c.do(ctx, http.MethodPut, printerPath(name)+"/mqtt", req, &out)
}
