package printer

import (
	"encoding/json"
	"net/http"
	"sync"
	"time"

	"github.com/coder/websocket"
	"go.uber.org/zap"
)

// rpcRequest is a JSON-RPC 2.0 request; ID is absent for notifications.
type rpcRequest struct {
	JSONRPC string          `json:"jsonrpc"`
	Method  string          `json:"method"`
	Params  json.RawMessage `json:"params"`
	ID      json.RawMessage `json:"id"`
}

type rpcResponse struct {
	JSONRPC string          `json:"jsonrpc"`
	Result  any             `json:"result,omitempty"`
	Error   *rpcError       `json:"error,omitempty"`
	ID      json.RawMessage `json:"id"`
}

// wsClient is one JSON-RPC WebSocket connection's state.
type wsClient struct {
	id  int64
	mu  sync.Mutex
	sub map[string][]string // subscribed objects and fields
}

// websocket serves Moonraker's JSON-RPC 2.0 socket: requests are answered in order, and a
// notify_status_update goes out at once and then every second with the subscribed objects
// plus "oesim":{"counter":N} (N increases by one per notification on this socket). Real
// Moonraker sends only changed fields; always sending keeps the socket visibly live.
func (m *Moonraker) websocket(w http.ResponseWriter, r *http.Request) {
	ctx, done, ok := m.life.begin(r.Context())
	if !ok {
		moonrakerError(w, &rpcError{Code: http.StatusServiceUnavailable, Message: "Moonraker is shutting down"})
		return
	}
	defer done()
	c, err := websocket.Accept(w, r, &websocket.AcceptOptions{InsecureSkipVerify: !m.opts.StrictOrigin})
	if err != nil {
		m.log.Debug("websocket handshake refused", zap.Error(err))
		return
	}
	c.SetReadLimit(1 << 20)
	m.wsCount.Add(1)
	defer m.wsCount.Add(-1)
	cl := &wsClient{id: m.connIDs.Add(1), sub: map[string][]string{}}

	// Replies are written by the reader goroutine; coder/websocket allows concurrent writers,
	// so they interleave safely with the notifications below.
	s, stop := startReader(c, func(s *wsSession, typ websocket.MessageType, b []byte) {
		if resp := m.handleRPC(cl, b); resp != nil {
			out, _ := json.Marshal(resp)
			_ = s.write(ctx, out)
		}
	})
	defer stop()

	// The first notification goes out at once, then one per pushInterval.
	tick := time.NewTicker(pushInterval)
	defer tick.Stop()
	for counter := 1; ; counter++ {
		if counter > 1 {
			select {
			case <-s.peerGone:
				return
			case <-ctx.Done():
				s.shutdown()
				return
			case <-tick.C:
			}
		}
		status := map[string]any{"oesim": map[string]int{"counter": counter}}
		cl.mu.Lock()
		sub := cl.sub
		cl.mu.Unlock()
		for k, v := range m.queryObjects(sub) {
			status[k] = v
		}
		out, _ := json.Marshal(map[string]any{"jsonrpc": "2.0", "method": "notify_status_update",
			"params": []any{status, m.eventtime()}})
		if err := s.write(ctx, out); err != nil {
			return
		}
	}
}

// handleRPC answers one JSON-RPC message; nil means no reply (a notification).
func (m *Moonraker) handleRPC(cl *wsClient, b []byte) *rpcResponse {
	var req rpcRequest
	if err := json.Unmarshal(b, &req); err != nil {
		return &rpcResponse{JSONRPC: "2.0", Error: &rpcError{Code: -32700, Message: "Parse error"}, ID: json.RawMessage("null")}
	}
	res, err := m.callRPC(cl, req.Method, req.Params)
	if len(req.ID) == 0 {
		return nil
	}
	resp := &rpcResponse{JSONRPC: "2.0", ID: req.ID}
	if err != nil {
		resp.Error = err
	} else {
		resp.Result = res
	}
	return resp
}

func (m *Moonraker) callRPC(cl *wsClient, method string, params json.RawMessage) (any, *rpcError) {
	switch method {
	case "server.info":
		return m.serverInfo(), nil
	case "printer.info":
		return m.printerInfo(), nil
	case "printer.objects.list":
		return map[string]any{"objects": objectNames}, nil
	case "printer.objects.query", "printer.objects.subscribe":
		var p struct {
			Objects map[string][]string `json:"objects"`
		}
		if err := decodeParams(params, &p); err != nil {
			return nil, err
		}
		if method == "printer.objects.subscribe" {
			cl.mu.Lock()
			cl.sub = p.Objects
			cl.mu.Unlock()
		}
		return map[string]any{"eventtime": m.eventtime(), "status": m.queryObjects(p.Objects)}, nil
	case "server.database.get_item":
		var p struct{ Namespace, Key string }
		if err := decodeParams(params, &p); err != nil {
			return nil, err
		}
		v, err := m.dbGetItem(p.Namespace, p.Key)
		if err != nil {
			return nil, err.(*rpcError)
		}
		return v, nil
	case "server.database.post_item", "server.database.delete_item":
		var p struct {
			Namespace, Key string
			Value          any
		}
		if err := decodeParams(params, &p); err != nil {
			return nil, err
		}
		var v any
		var err error
		if method == "server.database.post_item" {
			v, err = m.dbPostItem(p.Namespace, p.Key, p.Value)
		} else {
			v, err = m.dbDeleteItem(p.Namespace, p.Key)
		}
		if err != nil {
			return nil, err.(*rpcError)
		}
		return v, nil
	case "server.connection.identify":
		return map[string]any{"connection_id": cl.id}, nil
	case "server.websocket.id":
		return map[string]any{"websocket_id": cl.id}, nil
	case "printer.print.start", "printer.print.cancel", "printer.print.pause", "printer.print.resume":
		var p struct{ Filename string }
		if err := decodeParams(params, &p); err != nil {
			return nil, err
		}
		v, err := m.printAction(method[len("printer.print."):], p.Filename)
		if err != nil {
			return nil, err.(*rpcError)
		}
		return v, nil
	}
	return nil, &rpcError{Code: -32601, Message: "Method not found"}
}

func decodeParams(params json.RawMessage, v any) *rpcError {
	if len(params) == 0 || string(params) == "null" {
		return nil
	}
	if err := json.Unmarshal(params, v); err != nil {
		return &rpcError{Code: -32602, Message: "Invalid params: " + err.Error()}
	}
	return nil
}
