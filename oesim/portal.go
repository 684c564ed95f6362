package oesim

import (
	"fmt"
	"html/template"
	"net/http"
	"net/url"
	"strings"
	"unicode/utf8"

	"go.uber.org/zap"
)

// Outcome scripts how a portal session ends (QueueOutcome).
type Outcome int

const (
	// OutcomeApprove: success=true with every credential (the default).
	OutcomeApprove Outcome = iota
	// OutcomeFailure: success=false.
	OutcomeFailure
	// OutcomeNoSupporter: the "no supporter perks" page, then success=false.
	OutcomeNoSupporter
	// OutcomeKeygenFail: success=true without octoPrintApiKey (OctoPrint key generation failed).
	OutcomeKeygenFail
	// OutcomeNoRedirect: the page stays and nothing happens (the user gave up or closed it).
	OutcomeNoRedirect
)

func (o Outcome) String() string {
	switch o {
	case OutcomeApprove:
		return "approve"
	case OutcomeFailure:
		return "failure"
	case OutcomeNoSupporter:
		return "no-supporter"
	case OutcomeKeygenFail:
		return "keygen-fail"
	case OutcomeNoRedirect:
		return "no-redirect"
	}
	return fmt.Sprintf("Outcome(%d)", int(o))
}

// PortalSession is one visit of the portal: what it asked for and how it ended.
type PortalSession struct {
	Params        url.Values // the start URL's query with lower-cased keys
	Outcome       Outcome    // the scripted outcome (OutcomeFailure when the user pressed Cancel)
	ConnectionID  string     // the App Connection created, if any
	Finished      bool       // the portal navigated to the completion URL
	Cancelled     bool       // the user pressed Cancel on the Authorize page
	CompletionURL string     // where the portal sent the browser (secrets included); empty while not finished
}

type portalSession struct {
	PortalSession
	token   string
	printer *Printer
}

// QueueOutcome sets how the next portal session ends (FIFO; with an empty queue sessions are approved).
func (s *Sim) QueueOutcome(o Outcome) {
	s.mu.Lock()
	s.outcomes = append(s.outcomes, o)
	s.mu.Unlock()
}

// PortalSessions returns every portal visit so far, oldest first.
func (s *Sim) PortalSessions() []PortalSession {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]PortalSession, len(s.sessions))
	for i, ps := range s.sessions {
		out[i] = ps.PortalSession
		out[i].Params = cloneValues(ps.Params)
	}
	return out
}

// lowerKeys matches the portal's parameters case-insensitively (appid, appId and AppID are one key).
func lowerKeys(q url.Values) url.Values {
	out := url.Values{}
	for k, vv := range q {
		lk := strings.ToLower(k)
		out[lk] = append(out[lk], vv...)
	}
	return out
}

func cloneValues(v url.Values) url.Values {
	out := make(url.Values, len(v))
	for k, vv := range v {
		out[k] = append([]string(nil), vv...)
	}
	return out
}

// servePortal is GET /appportal/v1/: validate, pick the printer, take the next outcome, then show the Authorize
// page or (AutoApprove) finish at once.
func (s *Sim) servePortal(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		s.portalPage(w, http.StatusMethodNotAllowed, pageData{Title: "Method not allowed", Message: "Open the portal with GET."})
		return
	}
	params := lowerKeys(r.URL.Query())
	if params.Get("appid") == "" {
		s.portalPage(w, http.StatusBadRequest, pageData{Title: "Missing App ID",
			Message: "The portal URL needs an appid parameter, e.g. ?appid=devtest. Nothing was set up."})
		return
	}
	printers := s.Printers()
	if len(printers) == 0 {
		s.portalPage(w, http.StatusOK, pageData{Title: "No printers", Message: "This account has no printers to connect."})
		return
	}
	chosen := printers[0]
	if id := params.Get("printerid"); id != "" {
		for _, p := range printers {
			if strings.EqualFold(p.ID, id) {
				chosen = p
			}
		}
	}

	s.mu.Lock()
	outcome := OutcomeApprove
	if len(s.outcomes) > 0 {
		outcome, s.outcomes = s.outcomes[0], s.outcomes[1:]
	}
	sess := &portalSession{
		PortalSession: PortalSession{Params: params, Outcome: outcome},
		token:         randomString(32, mixedAlnum),
		printer:       chosen,
	}
	s.sessions = append(s.sessions, sess)
	s.byPortalTok[sess.token] = sess
	s.mu.Unlock()

	if s.opts.AutoApprove {
		s.finishPortal(w, r, sess, false)
		return
	}
	s.portalPage(w, http.StatusOK, s.authorizeData(sess, printers))
}

// serveAuthorize is the Authorize form's POST: approve (with the printer picked) or cancel.
func (s *Sim) serveAuthorize(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", "POST")
		s.portalPage(w, http.StatusMethodNotAllowed, pageData{Title: "Method not allowed", Message: "Use the Authorize button."})
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxAPIBodyBytes)
	if err := r.ParseForm(); err != nil {
		s.portalPage(w, http.StatusBadRequest, pageData{Title: "Bad form", Message: "The form could not be read."})
		return
	}
	sess := s.pendingSession(r.PostForm.Get("session"))
	if sess == nil {
		s.portalPage(w, http.StatusBadRequest, pageData{Title: "Session expired",
			Message: "This setup session is unknown or already finished. Start again from the app."})
		return
	}
	if id := r.PostForm.Get("printer"); id != "" {
		for _, p := range s.Printers() {
			if p.ID == id {
				s.mu.Lock()
				sess.printer = p
				s.mu.Unlock()
			}
		}
	}
	s.finishPortal(w, r, sess, r.PostForm.Get("action") == "cancel")
}

func (s *Sim) pendingSession(token string) *portalSession {
	s.mu.Lock()
	defer s.mu.Unlock()
	sess := s.byPortalTok[token]
	if sess == nil || sess.Finished {
		return nil
	}
	return sess
}

// finishPortal applies the session's outcome.
func (s *Sim) finishPortal(w http.ResponseWriter, r *http.Request, sess *portalSession, cancel bool) {
	s.mu.Lock()
	outcome, params, p := sess.Outcome, sess.Params, sess.printer
	s.mu.Unlock()
	switch {
	case cancel:
		s.mu.Lock()
		sess.Outcome, sess.Cancelled = OutcomeFailure, true
		s.mu.Unlock()
		s.redirectCompletion(w, r, sess, [][2]string{{"success", "false"}})
	case outcome == OutcomeNoRedirect:
		s.portalPage(w, http.StatusOK, pageData{Title: "Connecting " + p.Name + "…",
			Message: "Waiting for OctoEverywhere. (oesim: this session was scripted to never finish.)"})
	case outcome == OutcomeFailure:
		s.redirectCompletion(w, r, sess, [][2]string{{"success", "false"}})
	case outcome == OutcomeNoSupporter:
		q := url.Values{"appid": {params.Get("appid")}, "session": {sess.token}}
		http.Redirect(w, r, "/appportal/v1/nosupporterperks?"+q.Encode(), http.StatusFound)
	default:
		name := params.Get("octoprintapikeyappname")
		n := utf8.RuneCountInString(name)
		withKey := outcome != OutcomeKeygenFail && n >= 2 && n <= maxPortalAppNameLength
		c := s.newConnection(p, withKey)
		cr := c.Credentials()
		userKey, passKey := "authbasichttpuser", "authbasichttppassword"
		if s.opts.CamelCaseCompletion {
			userKey, passKey = "authBasicHttpUser", "authBasicHttpPassword"
		}
		pairs := [][2]string{
			{"success", "true"},
			{"id", cr.ID},
			{"url", cr.URL},
			{"appApiToken", cr.AppAPIToken},
			{"printername", p.Name},
			{"userPrinterAccessUrl", s.userFacingURL(p)},
		}
		if p.localIP != "" {
			pairs = append(pairs, [2]string{"printerLastKnownLocalIp", p.localIP})
		}
		pairs = append(pairs,
			[2]string{userKey, cr.BasicUser},
			[2]string{passKey, cr.BasicPassword},
			[2]string{"authBearerToken", cr.BearerToken})
		if cr.OctoPrintAPIKey != "" {
			pairs = append(pairs, [2]string{"octoPrintApiKey", cr.OctoPrintAPIKey})
		}
		s.mu.Lock()
		sess.ConnectionID = cr.ID
		s.mu.Unlock()
		s.log.Info("portal: App Connection created", zap.String("printer", p.Name)) // the id names the relay host: not logged
		s.redirectCompletion(w, r, sess, pairs)
	}
}

// redirectCompletion navigates to returnUrl (default /appportal/v1/complete) with the pairs appended: with "&"
// when it already has a query, before any fragment. Custom schemes (octopod://...) are kept as given.
func (s *Sim) redirectCompletion(w http.ResponseWriter, r *http.Request, sess *portalSession, pairs [][2]string) {
	s.mu.Lock()
	ret := sess.Params.Get("returnurl")
	s.mu.Unlock()
	if ret == "" {
		ret = "https://" + s.Domain + "/appportal/v1/complete"
	}
	target := appendQuery(ret, pairs)
	s.mu.Lock()
	sess.Finished, sess.CompletionURL = true, target
	s.mu.Unlock()
	w.Header().Set("Location", target) // not http.Redirect: it would clean up a custom-scheme URL
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusFound)
}

func appendQuery(base string, pairs [][2]string) string {
	frag := ""
	if i := strings.IndexByte(base, '#'); i >= 0 {
		base, frag = base[:i], base[i:]
	}
	sep := "?"
	switch {
	case strings.HasSuffix(base, "?") || strings.HasSuffix(base, "&"):
		sep = ""
	case strings.Contains(base, "?"):
		sep = "&"
	}
	var b strings.Builder
	b.WriteString(base)
	for _, kv := range pairs {
		b.WriteString(sep)
		b.WriteString(url.QueryEscape(kv[0]))
		b.WriteByte('=')
		b.WriteString(url.QueryEscape(kv[1]))
		sep = "&"
	}
	return b.String() + frag
}

// serveComplete is the default completion page.
func (s *Sim) serveComplete(w http.ResponseWriter, r *http.Request) {
	if lowerKeys(r.URL.Query()).Get("success") == "true" {
		s.portalPage(w, http.StatusOK, pageData{Title: "Setup complete", Message: "You can close this window and return to the app."})
		return
	}
	s.portalPage(w, http.StatusOK, pageData{Title: "Setup did not complete", Message: "You can close this window and try again from the app."})
}

// serveNoSupporter is /appportal/v1/nosupporterperks: the page apps link to on 605, and the step a portal
// session with OutcomeNoSupporter passes through before it returns success=false.
func (s *Sim) serveNoSupporter(w http.ResponseWriter, r *http.Request) {
	token := lowerKeys(r.URL.Query()).Get("session")
	if r.Method == http.MethodPost {
		r.Body = http.MaxBytesReader(w, r.Body, maxAPIBodyBytes)
		if err := r.ParseForm(); err == nil {
			token = r.PostForm.Get("session")
		}
	}
	sess := s.pendingSession(token)
	if sess != nil && (r.Method == http.MethodPost || s.opts.AutoApprove) {
		s.redirectCompletion(w, r, sess, [][2]string{{"success", "false"}})
		return
	}
	data := pageData{
		Title: "Supporter Perks needed",
		Message: "App Connections are an OctoEverywhere Supporter Perk. Becoming a supporter keeps OctoEverywhere " +
			"running; once you are one, your apps connect again.",
	}
	if sess != nil {
		data.Session, data.Action, data.Button = sess.token, "/appportal/v1/nosupporterperks", "Not now"
	}
	s.portalPage(w, http.StatusOK, data)
}

// pageData feeds the one portal template.
type pageData struct {
	Title, Message string
	AppID, LogoURL string
	Printers       []*Printer
	Selected       string
	Session        string
	Action, Button string // a single-button form (no-supporter page)
	Authorize      bool
}

func (s *Sim) authorizeData(sess *portalSession, printers []*Printer) pageData {
	d := pageData{
		Title:     "Connect " + sess.Params.Get("appid") + " to your printer",
		Message:   "This app asks for access to your printer through OctoEverywhere.",
		AppID:     sess.Params.Get("appid"),
		Printers:  printers,
		Selected:  sess.printer.ID,
		Session:   sess.token,
		Authorize: true,
	}
	if logo := sess.Params.Get("applogourl"); strings.HasPrefix(logo, "https://") || strings.HasPrefix(logo, "http://") {
		d.LogoURL = logo
	}
	return d
}

func (s *Sim) portalPage(w http.ResponseWriter, status int, d pageData) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	if err := portalTemplate.Execute(w, d); err != nil {
		s.log.Warn("portal page", zap.Error(err))
	}
}

var portalTemplate = template.Must(template.New("portal").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{.Title}} · OctoEverywhere (oesim)</title>
<style>body{font-family:system-ui,sans-serif;max-width:30rem;margin:2rem auto;padding:0 1rem}
button{font-size:1rem;padding:.5rem 1.2rem;margin:.3rem}img{width:100px;height:100px;border-radius:50%}</style>
</head><body>
<p><small>OctoEverywhere (simulated by oesim)</small></p>
{{if .LogoURL}}<img src="{{.LogoURL}}" alt="app logo">{{end}}
<h1>{{.Title}}</h1>
<p>{{.Message}}</p>
{{if .Authorize}}
<form method="post" action="/appportal/v1/authorize">
<input type="hidden" name="session" value="{{.Session}}">
<label>Printer <select name="printer">{{range .Printers}}
<option value="{{.ID}}"{{if eq .ID $.Selected}} selected{{end}}>{{.Name}}</option>{{end}}
</select></label>
<p><button type="submit" name="action" value="approve" id="authorize">Authorize</button>
<button type="submit" name="action" value="cancel" id="cancel">Cancel</button></p>
</form>
{{else if .Action}}
<form method="post" action="{{.Action}}"><input type="hidden" name="session" value="{{.Session}}">
<button type="submit" id="continue">{{.Button}}</button></form>
{{end}}
</body></html>
`))
