package oesim

import (
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// DotNetTime formats t the way OctoEverywhere's .NET backend does: 7 fractional digits and Z, or
// "0001-01-01T00:00:00" (no Z) for the zero time, meaning "never".
func DotNetTime(t time.Time) string {
	if t.IsZero() {
		return "0001-01-01T00:00:00"
	}
	return t.UTC().Format("2006-01-02T15:04:05.0000000Z")
}

type dotnetTime time.Time

func (t dotnetTime) MarshalJSON() ([]byte, error) {
	return []byte(strconv.Quote(DotNetTime(time.Time(t)))), nil
}

// envelope is the shape real App API responses carry (Mobileraker's observations); errors use it in both modes.
type envelope struct {
	Status      int
	Error       string
	IsUserError bool
	Result      any
}

// apiRequest is every field the POST App APIs read; encoding/json matches keys case-insensitively, as ASP.NET does.
type apiRequest struct {
	AppToken                      string
	ExpirationHours               *float64
	EndWhenCurrentPrintIsComplete bool
	WebhookUrl                    string
	InclusiveEventTypesFilter     []int
}

type apiRoute struct {
	method    string
	bodyToken bool // the token may come in the JSON body (POST APIs); TestWebhook takes the header only
	handle    func(s *Sim, w http.ResponseWriter, c *Connection, req *apiRequest)
}

var apiRoutes = map[string]apiRoute{
	"/api/appconnection/info":                      {http.MethodGet, false, (*Sim).apiInfo},
	"/api/live/createfromappconnection":            {http.MethodPost, true, (*Sim).apiLiveLink},
	"/api/gadget/getstatusfromappconnection":       {http.MethodPost, true, (*Sim).apiGadget},
	"/api/appconnection/setnotificationwebhook":    {http.MethodPost, true, (*Sim).apiSetWebhook},
	"/api/appconnection/deletenotificationwebhook": {http.MethodPost, true, (*Sim).apiDeleteWebhook},
	"/api/appconnection/testwebhook":               {http.MethodGet, false, (*Sim).apiTestWebhook},
}

// serveAPI dispatches an App API call (path already lower-cased) after the token checks of §8.4:
// missing 400, unknown 603, revoked 604.
func (s *Sim) serveAPI(w http.ResponseWriter, r *http.Request, path string) {
	route, ok := apiRoutes[strings.TrimSuffix(path, "/")]
	if !ok {
		s.apiError(w, http.StatusNotFound, "No such API.", true)
		return
	}
	if r.Method != route.method {
		w.Header().Set("Allow", route.method)
		s.apiError(w, http.StatusMethodNotAllowed, "Use "+route.method+".", true)
		return
	}
	req := &apiRequest{}
	if r.Method == http.MethodPost {
		body, err := io.ReadAll(io.LimitReader(r.Body, maxAPIBodyBytes+1))
		if err != nil {
			return // the client went away
		}
		if len(body) > maxAPIBodyBytes {
			s.apiError(w, http.StatusBadRequest, "Request body too large.", true)
			return
		}
		if len(strings.TrimSpace(string(body))) > 0 {
			if err := json.Unmarshal(body, req); err != nil {
				s.apiError(w, http.StatusBadRequest, "The request body is not valid JSON: "+err.Error(), true)
				return
			}
		}
	}
	token := r.Header.Get("AppToken")
	if token == "" && route.bodyToken {
		token = req.AppToken
	}
	if token == "" {
		s.apiError(w, http.StatusBadRequest, "The AppToken header is missing.", true)
		return
	}
	c := s.connectionByToken(token)
	if c == nil {
		s.apiError(w, StatusNotFound, StatusText(StatusNotFound), false)
		return
	}
	c.mu.Lock()
	deleted, revoked := c.deleted, c.revoked
	c.mu.Unlock()
	switch {
	case deleted:
		s.apiError(w, StatusNotFound, StatusText(StatusNotFound), false)
	case revoked:
		s.apiError(w, StatusRevoked, StatusText(StatusRevoked), false)
	default:
		route.handle(s, w, c, req)
	}
}

func (s *Sim) apiResult(w http.ResponseWriter, result any) {
	var v any = envelope{Status: http.StatusOK, Result: result}
	if s.opts.BareAPI {
		v = result
	}
	writeJSON(w, http.StatusOK, v)
}

// apiError answers an App API error: the HTTP status is the code (6xx included) and the body the envelope with a
// null Result, whatever BareAPI says (the docs only say "a JSON body payload with error details").
func (s *Sim) apiError(w http.ResponseWriter, code int, msg string, userError bool) {
	writeJSON(w, code, envelope{Status: code, Error: msg, IsUserError: userError})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	body, err := json.Marshal(v)
	if err != nil {
		http.Error(w, "oesim: "+err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

type infoLimits struct {
	MaxDownloadFileSizeBytes                     int64
	MaxUploadFileSizeBytes                       int64
	MaxSingleWebcamStreamLengthSeconds           int64
	MaxTotalWebcamStreamTimePerTimeWindowSeconds *int64 // undocumented, seen as null
	WebcamStreamTimeWindow                       *int64 // undocumented, seen as null
}

type infoResult struct {
	PrinterName           string
	PrinterLocalIp        *string
	IsOnline              bool
	LastDisconnectTimeUtc dotnetTime
	LastConnectionTimeUtc dotnetTime
	UserFacingPrinterUrl  string
	PrinterLimits         infoLimits
}

// apiInfo is GET /api/appconnection/info: 605 without Supporter Perks; an offline printer is 200 with IsOnline
// false (or 601 with Options.InfoOfflineError).
func (s *Sim) apiInfo(w http.ResponseWriter, c *Connection, _ *apiRequest) {
	c.mu.Lock()
	supporter, lim := c.supporter, c.limits
	c.mu.Unlock()
	if !supporter {
		s.apiError(w, StatusNoSupporter, StatusText(StatusNoSupporter), false)
		return
	}
	p := c.printer
	online, _, lastConnect, lastDisconnect := p.state()
	if !online && s.opts.InfoOfflineError {
		s.apiError(w, StatusPrinterOffline, StatusText(StatusPrinterOffline), false)
		return
	}
	secs := int64((lim.MaxSingleWebcamStreamLength + time.Second - 1) / time.Second)
	if secs < 1 {
		secs = 1
	}
	res := infoResult{
		PrinterName:           p.Name,
		IsOnline:              online,
		LastDisconnectTimeUtc: dotnetTime(lastDisconnect),
		LastConnectionTimeUtc: dotnetTime(lastConnect),
		UserFacingPrinterUrl:  s.userFacingURL(p),
		PrinterLimits: infoLimits{
			MaxDownloadFileSizeBytes:           lim.MaxDownloadFileSizeBytes,
			MaxUploadFileSizeBytes:             lim.MaxUploadFileSizeBytes,
			MaxSingleWebcamStreamLengthSeconds: secs,
		},
	}
	if p.localIP != "" {
		ip := p.localIP
		res.PrinterLocalIp = &ip
	}
	s.apiResult(w, res)
}

type liveLinkResult struct {
	LiveId, Url, ShortUrl string
}

// apiLiveLink is POST /api/live/createfromappconnection: ExpirationHours 1..17520 (default 24) unless the link
// follows the current print, which needs one (613).
func (s *Sim) apiLiveLink(w http.ResponseWriter, c *Connection, req *apiRequest) {
	hours := 24.0
	if req.EndWhenCurrentPrintIsComplete {
		if _, printing, _, _ := c.printer.state(); !printing {
			s.apiError(w, StatusNoActivePrint, StatusText(StatusNoActivePrint), true)
			return
		}
		hours = 0
	} else if req.ExpirationHours != nil {
		hours = *req.ExpirationHours
		if hours < 1 || hours > 17520 {
			s.apiError(w, http.StatusBadRequest, "ExpirationHours must be between 1 and 17520.", true)
			return
		}
	}
	id := randomString(10, mixedAlnum)
	link := LiveLink{
		LiveID: id, URL: "https://" + s.Domain + "/live/" + id, ShortURL: "https://oe.ink/l/" + id,
		ExpirationHours: hours, EndWithPrint: req.EndWhenCurrentPrintIsComplete, Created: time.Now(),
	}
	c.mu.Lock()
	c.liveLinks = append(c.liveLinks, link)
	c.mu.Unlock()
	s.apiResult(w, liveLinkResult{LiveId: link.LiveID, Url: link.URL, ShortUrl: link.ShortURL})
}

// apiGadget is POST /api/gadget/GetStatusFromAppConnection. The 10 s rule is documented but its error is not:
// the sim answers 429 to a call less than GadgetMinInterval after the last answered one.
func (s *Sim) apiGadget(w http.ResponseWriter, c *Connection, _ *apiRequest) {
	if online, _, _, _ := c.printer.state(); !online {
		s.apiError(w, StatusPrinterOffline, StatusText(StatusPrinterOffline), false)
		return
	}
	now := time.Now()
	c.mu.Lock()
	if iv := s.opts.GadgetMinInterval; iv > 0 && !c.gadgetLast.IsZero() && now.Sub(c.gadgetLast) < iv {
		c.mu.Unlock()
		s.apiError(w, StatusGadgetRateLimited, "Gadget status may be polled at most every "+iv.String()+" per App Connection.", true)
		return
	}
	c.gadgetLast = now
	g := c.gadget
	c.mu.Unlock()
	s.apiResult(w, g)
}

// apiSetWebhook is POST /api/appconnection/SetNotificationWebhook: an https URL (kept exactly, query included)
// and an optional filter of event types 1..16; each call replaces the previous one.
func (s *Sim) apiSetWebhook(w http.ResponseWriter, c *Connection, req *apiRequest) {
	u, err := url.Parse(req.WebhookUrl)
	if req.WebhookUrl == "" || err != nil || !strings.EqualFold(u.Scheme, "https") || u.Host == "" {
		s.apiError(w, http.StatusBadRequest, "WebhookUrl must be an absolute https:// URL.", true)
		return
	}
	for _, t := range req.InclusiveEventTypesFilter {
		if t < 1 || t > 16 {
			s.apiError(w, http.StatusBadRequest, "InclusiveEventTypesFilter holds an unknown event type "+strconv.Itoa(t)+" (1..16).", true)
			return
		}
	}
	c.mu.Lock()
	c.webhookURL, c.webhookFilter, c.webhookSetAt = req.WebhookUrl, append([]int(nil), req.InclusiveEventTypesFilter...), time.Now()
	c.mu.Unlock()
	s.apiResult(w, struct{}{})
}

func (s *Sim) apiDeleteWebhook(w http.ResponseWriter, c *Connection, _ *apiRequest) {
	c.mu.Lock()
	c.webhookURL, c.webhookFilter, c.webhookSetAt = "", nil, time.Time{}
	c.mu.Unlock()
	s.apiResult(w, struct{}{})
}

type testWebhookResult struct {
	StatusCode int // the status the receiver answered; 0 when it could not be reached (field name: our choice)
}

// apiTestWebhook is GET /api/appconnection/TestWebhook: POSTs an EventType 16 payload whatever the filter says.
func (s *Sim) apiTestWebhook(w http.ResponseWriter, c *Connection, _ *apiRequest) {
	target, _, _ := c.Webhook()
	if target == "" {
		s.apiError(w, http.StatusBadRequest, "No notification webhook is set for this App Connection.", true)
		return
	}
	d := s.deliver(c, target, EventTestNotification)
	s.apiResult(w, testWebhookResult{StatusCode: d.StatusCode})
}
