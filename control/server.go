package control

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"

	"github.com/oeproxy/oeproxy/appapi"
)

// Handler serves c as the control API (HTTP over the unix socket; the socket's 0600 mode is the
// authentication, as with dockerd or tailscaled).
func Handler(c Control) http.Handler {
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

func decodeBody(w http.ResponseWriter, r *http.Request, v any) bool {
	if err := json.NewDecoder(io.LimitReader(r.Body, 1<<20)).Decode(v); err != nil {
		reply(w, nil, fmt.Errorf("%w: %v", ErrInvalid, err))
		return false
	}
	return true
}

type liveLinkBody struct {
	Hours          int  `json:"hours,omitempty"`
	UntilPrintDone bool `json:"until_print_done,omitempty"`
}

type webhookBody struct {
	URL    string `json:"url"`
	Events []int  `json:"events,omitempty"`
}

// appRoutes adds the AppControl routes to the control API.
func appRoutes(mux *http.ServeMux, c Control) {
	mux.HandleFunc("GET /v1/status", func(w http.ResponseWriter, r *http.Request) {
		list, err := c.Status(r.Context(), r.URL.Query().Get("name"))
		reply(w, list, err)
	})
	mux.HandleFunc("POST /v1/printers/{name}/livelink", func(w http.ResponseWriter, r *http.Request) {
		var b liveLinkBody
		if !decodeBody(w, r, &b) {
			return
		}
		l, err := c.LiveLink(r.Context(), r.PathValue("name"), appapi.LiveLinkRequest{Hours: b.Hours, UntilPrintDone: b.UntilPrintDone})
		reply(w, l, err)
	})
	mux.HandleFunc("POST /v1/printers/{name}/gadget", func(w http.ResponseWriter, r *http.Request) {
		g, err := c.Gadget(r.Context(), r.PathValue("name"))
		reply(w, g, err)
	})
	mux.HandleFunc("PUT /v1/printers/{name}/webhook", func(w http.ResponseWriter, r *http.Request) {
		var b webhookBody
		if !decodeBody(w, r, &b) {
			return
		}
		ev := make([]appapi.EventType, 0, len(b.Events))
		for _, e := range b.Events {
			ev = append(ev, appapi.EventType(e))
		}
		info, err := c.SetWebhook(r.Context(), r.PathValue("name"), b.URL, ev)
		reply(w, info, err)
	})
	mux.HandleFunc("DELETE /v1/printers/{name}/webhook", func(w http.ResponseWriter, r *http.Request) {
		reply(w, struct{}{}, c.DeleteWebhook(r.Context(), r.PathValue("name")))
	})
	mux.HandleFunc("POST /v1/printers/{name}/webhook/test", func(w http.ResponseWriter, r *http.Request) {
		t, err := c.TestWebhook(r.Context(), r.PathValue("name"))
		reply(w, t, err)
	})
}

// lanRoutes adds the LANControl route to the control API.
func lanRoutes(mux *http.ServeMux, c Control) {
	mux.HandleFunc("PUT /v1/printers/{name}/lan", func(w http.ResponseWriter, r *http.Request) {
		var b LANRequest
		if !decodeBody(w, r, &b) {
			return
		}
		rec, err := c.SetLAN(r.Context(), r.PathValue("name"), b)
		reply(w, rec, err)
	})
}

// mqttRoutes adds the MQTTControl route to the control API.
func mqttRoutes(mux *http.ServeMux, c Control) {
	mux.HandleFunc("PUT /v1/printers/{name}/mqtt", func(w http.ResponseWriter, r *http.Request) {
		var req MQTTRequest
		if err := json.NewDecoder(io.LimitReader(r.Body, 64<<10)).Decode(&req); err != nil {
			reply(w, nil, fmt.Errorf("%w: %v", ErrInvalid, err))
			return
		}
		rec, err := c.SetMQTT(r.Context(), r.PathValue("name"), req)
		reply(w, rec, err)
	})
}
