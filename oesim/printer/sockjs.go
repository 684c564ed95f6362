package printer

import (
	"context"
	"encoding/json"
	"math/rand/v2"
	"net/http"
	"time"

	"github.com/coder/websocket"
	"go.uber.org/zap"
)

// sockjsHeartbeat is sockjs-tornado's default heartbeat_delay; heartbeats exist only on the
// framed transport.
const sockjsHeartbeat = 25 * time.Second

func (o *OctoPrint) sockjsInfo(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{
		"websocket": true, "cookie_needed": false, "origins": []string{"*:*"}, "entropy": rand.Uint32(),
	})
}

// sockjsRaw is the raw WebSocket transport (/sockjs/websocket): sockjs-tornado's RawSession
// sends each message as plain JSON, without SockJS framing.
func (o *OctoPrint) sockjsRaw(w http.ResponseWriter, r *http.Request) { o.sockjs(w, r, false) }

// sockjsFramed is the SockJS WebSocket transport (/sockjs/<server>/<session>/websocket), the
// one OctoPrint's own web UI uses: "o" on open, "a[...]" message arrays, "h" heartbeats.
func (o *OctoPrint) sockjsFramed(w http.ResponseWriter, r *http.Request) { o.sockjs(w, r, true) }

func (o *OctoPrint) sockjs(w http.ResponseWriter, r *http.Request, framed bool) {
	ctx, done, ok := o.life.begin(r.Context())
	if !ok {
		http.Error(w, "OctoPrint is shutting down", http.StatusServiceUnavailable)
		return
	}
	defer done()
	c, err := websocket.Accept(w, r, &websocket.AcceptOptions{InsecureSkipVerify: !o.opts.StrictOrigin})
	if err != nil {
		o.log.Debug("sockjs handshake refused", zap.Error(err))
		return // Accept has answered the client
	}
	// Client messages (auth, subscribe, throttle) are accepted and ignored: every socket gets
	// the full push, which is all the simulation needs.
	s, stop := startReader(c, nil)
	defer stop()

	send := func(msg any) error {
		b, err := json.Marshal(msg)
		if err != nil {
			return err
		}
		if framed {
			b, _ = json.Marshal([]json.RawMessage{b})
			b = append([]byte("a"), b...)
		}
		return s.write(ctx, b)
	}
	if framed {
		if err := s.write(ctx, []byte("o")); err != nil {
			return
		}
	}
	if err := send(o.connectedMessage()); err != nil {
		return
	}
	// The first "current" goes out at once (so a page shows live state without waiting a
	// period), then one per pushInterval.
	if err := send(o.currentMessage(1)); err != nil {
		return
	}
	push := time.NewTicker(pushInterval)
	defer push.Stop()
	heartbeat := time.NewTicker(sockjsHeartbeat)
	defer heartbeat.Stop()
	for counter := 2; ; {
		select {
		case <-s.peerGone:
			return
		case <-ctx.Done():
			if framed {
				// SockJS says goodbye with a close frame before the WebSocket close.
				wctx, cancel := context.WithTimeout(context.Background(), time.Second)
				_ = c.Write(wctx, websocket.MessageText, []byte(`c[3000,"Go away!"]`))
				cancel()
			}
			s.shutdown()
			return
		case <-heartbeat.C:
			if framed {
				if err := s.write(ctx, []byte("h")); err != nil {
					return
				}
			}
		case <-push.C:
			if err := send(o.currentMessage(counter)); err != nil {
				return
			}
			counter++
		}
	}
}

func (o *OctoPrint) connectedMessage() map[string]any {
	return map[string]any{"connected": map[string]any{
		"version": octoPrintVersion, "display_version": octoPrintVersion, "branch": "master",
		"python_version": "3.11.2", "plugin_hash": "0a1b2c3d4e5f", "config_hash": "f5e4d3c2b1a0",
		"debug": false, "safe_mode": nil, "online": true, "permissions": []any{}, "apikey": nil,
	}}
}

// currentMessage is OctoPrint's "current" push; "oesim.counter" increases by one per message
// on a socket so that tests and the page can see the socket is live.
func (o *OctoPrint) currentMessage(counter int) map[string]any {
	s := o.machine.snapshot()
	tool, toolT, bed, bedT := s.temps()
	now := time.Now()
	job := o.jobJSON(s)
	return map[string]any{"current": map[string]any{
		"state":      o.stateJSON(s),
		"job":        job["job"],
		"progress":   job["progress"],
		"currentZ":   nil,
		"offsets":    map[string]any{},
		"resends":    map[string]any{"count": 0, "transmitted": 0, "ratio": 0},
		"temps":      []any{map[string]any{"time": now.Unix(), "tool0": map[string]float64{"actual": tool, "target": toolT}, "bed": map[string]float64{"actual": bed, "target": bedT}}},
		"logs":       []string{},
		"messages":   []string{},
		"busyFiles":  []any{},
		"serverTime": float64(now.UnixMilli()) / 1000,
		"oesim":      map[string]int{"counter": counter},
	}}
}
