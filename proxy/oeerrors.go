package proxy

import (
	"bytes"
	"encoding/json"
	"fmt"
	"html/template"
	"io"
	"net/http"
	"strconv"
	"strings"

	"go.uber.org/zap"
)

// OctoEverywhere answers with its own status codes 600..699 (research file §3.6). They pass to the client
// unchanged, since apps such as OctoApp and OctoPod act on them, with an explanation in place of the relay's body
// and the code repeated in X-Oeproxy-Error for scripts.

// ErrorHeader is set on every answer that carries an OctoEverywhere 6xx code.
const ErrorHeader = "X-Oeproxy-Error"

func isOEError(code int) bool { return code >= 600 && code <= 699 }

// explanation is the body of a 6xx answer (and of oeproxy's own refusals): JSON {"code","meaning","action"},
// or an HTML page for browsers.
type explanation struct {
	Code    int    `json:"code"`
	Meaning string `json:"meaning"`
	Action  string `json:"action"`
	Link    string `json:"link,omitempty"`
}

// oeCodes holds the meaning of each documented code and what the user can do; "%s" is the printer's name.
var oeCodes = map[int][2]string{
	600: {"OctoEverywhere had an unknown or server error.", "This is usually temporary: try again in a moment."},
	601: {"The printer is not connected to OctoEverywhere (its plugin is offline).", "Check that the printer and its OctoEverywhere plugin are on and online, then try again."},
	602: {"OctoEverywhere's connection to the printer's plugin timed out.", "The printer's network may be slow or down; try again in a moment."},
	603: {"OctoEverywhere does not know this App Connection.", "Link the printer again: oeproxy remove %[1]s, then oeproxy connect --name %[1]s."},
	604: {"This App Connection was revoked or has expired.", "Link the printer again: oeproxy remove %[1]s, then oeproxy connect --name %[1]s."},
	605: {"The owner of this printer's OctoEverywhere account is no longer an OctoEverywhere Supporter.", "App Connections need Supporter perks: see the link below, then try again."},
	606: {"OctoEverywhere refused the App Connection credential.", "Link the printer again: oeproxy remove %[1]s, then oeproxy connect --name %[1]s."},
	607: {"The file is larger than the download limit of this OctoEverywhere account.", "See the limits with oeproxy status %[1]s; download the file on the printer's own network."},
	608: {"The upload is larger than the upload limit of this OctoEverywhere account.", "See the limits with oeproxy status %[1]s; send a smaller file or upload on the printer's own network."},
	609: {"Too many webcam streams were started in a short time.", "Wait a few minutes before opening the webcam again."},
	610: {"The printer's OctoEverywhere plugin must be updated.", "Update the OctoEverywhere plugin on the printer."},
	611: {"This feature needs OctoEverywhere beta access.", "The feature is not available to this account."},
	612: {"The printer's OctoEverywhere plugin reported an error.", "Try again; if it persists, restart the printer's OctoEverywhere plugin or contact OctoEverywhere support."},
	613: {"There is no active print.", "Start a print first."},
}

// explain returns the explanation of an OctoEverywhere code for this printer.
func (h *Handler) explain(code int) explanation {
	m, ok := oeCodes[code]
	if !ok {
		m = [2]string{"OctoEverywhere answered with an error code this version of oeproxy does not know.",
			"Try again later; if it persists, check the printer in the OctoEverywhere dashboard."}
	}
	e := explanation{Code: code, Meaning: m[0], Action: m[1]}
	if strings.Contains(e.Action, "%[1]s") {
		e.Action = fmt.Sprintf(e.Action, h.printer.Name)
	}
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
	if isOEError(status) {
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
