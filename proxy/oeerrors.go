package proxy

import (
	"bytes"
	"encoding/json"
	"html/template"
	"io"
	"net/http"
	"strconv"
	"strings"

	"github.com/oeproxy/oeproxy/internal/oe"
	"go.uber.org/zap"
)

// OctoEverywhere answers with its own status codes 600..699 (research file §3.6). They pass to the client
// unchanged, since apps such as OctoApp and OctoPod act on them, with an explanation in place of the relay's body
// and the code repeated in X-Oeproxy-Error for scripts.

// ErrorHeader is set on every answer that carries an OctoEverywhere 6xx code.
const ErrorHeader = "X-Oeproxy-Error"

// explanation is the body of a 6xx answer (and of oeproxy's own refusals): JSON {"code","meaning","action"},
// or an HTML page for browsers.
type explanation struct {
	Code    int    `json:"code"`
	Meaning string `json:"meaning"`
	Action  string `json:"action"`
	Link    string `json:"link,omitempty"`
}

// explain returns the explanation of an OctoEverywhere code for this printer (package oe owns the words).
func (h *Handler) explain(code int) explanation {
	c := oe.Lookup(code)
	e := explanation{Code: code, Meaning: c.Meaning, Action: c.ActionFor(h.printer.Name)}
	if code == 605 {
		e.Link = h.supportLink
	}
	return e
}

func wantsHTML(accept string) bool { return strings.Contains(strings.ToLower(accept), "text/html") }

// render returns the body and content type of an explanation for a client that sent accept.
func render(e explanation, accept string) ([]byte, string) {
	if wantsHTML(accept) {
		var b bytes.Buffer
		_ = pageTmpl.Execute(&b, e)
		return b.Bytes(), "text/html; charset=utf-8"
	}
	// Not HTML: keep "&&" in the advice readable for curl users (json.Marshal would escape it).
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(e)
	return b.Bytes(), "application/json"
}

var pageTmpl = template.Must(template.New("page").Parse(`<!doctype html>
<html><head><meta charset="utf-8"><title>{{.Code}}: {{.Meaning}}</title></head>
<body style="font-family: sans-serif; max-width: 40em; margin: 3em auto">
<h1>{{.Code}}</h1>
<p><strong>{{.Meaning}}</strong></p>
<p>{{.Action}}</p>
{{if .Link}}<p><a href="{{.Link}}">{{.Link}}</a></p>{{end}}
<p><small>oeproxy</small></p>
</body></html>
`))

// replaceBody swaps a 6xx response's body for the explanation, keeping the status.
func replaceBody(resp *http.Response, e explanation, accept string) {
	_ = resp.Body.Close()
	body, ct := render(e, accept)
	for _, k := range []string{"Content-Encoding", "Content-Length", "Content-Range", "Etag", "Last-Modified", "Transfer-Encoding"} {
		resp.Header.Del(k)
	}
	resp.Header.Set("Content-Type", ct)
	resp.Header.Set("Content-Length", strconv.Itoa(len(body)))
	resp.Header.Set(ErrorHeader, strconv.Itoa(e.Code))
	resp.Header.Set("Cache-Control", "no-store")
	resp.Body = io.NopCloser(bytes.NewReader(body))
	resp.ContentLength = int64(len(body))
	resp.TransferEncoding = nil
	resp.Uncompressed = false
}

// writeExplanation answers a request directly with an explanation.
func writeExplanation(w http.ResponseWriter, r *http.Request, status int, e explanation) {
	body, ct := render(e, r.Header.Get("Accept"))
	w.Header().Set("Content-Type", ct)
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.Header().Set("Cache-Control", "no-store")
	if oe.IsCode(status) {
		w.Header().Set(ErrorHeader, strconv.Itoa(status))
	}
	w.WriteHeader(status)
	if r.Method != http.MethodHead {
		_, _ = w.Write(body)
	}
}

// noteRelayCode counts a 6xx and logs it when it differs from the last state of this printer (a line per
// change, not per request: a dashboard polling an offline printer must not flood the log).
func (h *Handler) noteRelayCode(code int) {
	if h.opts.Hooks.RelayCode != nil {
		h.opts.Hooks.RelayCode(code)
	}
	if int(h.state.Swap(int32(code))) == code {
		return
	}
	e := h.explain(code)
	h.log.Warn("OctoEverywhere answered with an error code", zap.Int("code", code),
		zap.String("meaning", e.Meaning), zap.String("action", e.Action))
}

// noteRelayOK logs once when the relay answers normally again after an error state.
func (h *Handler) noteRelayOK() {
	if prev := h.state.Swap(0); prev != 0 {
		h.log.Info("the relay answers normally again", zap.Int("previous", int(prev)))
	}
}
