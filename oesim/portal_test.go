package oesim

import (
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
)

// portalGet opens the portal with the raw query q and returns the response and body.
func portalGet(t *testing.T, s *Sim, q string) (*http.Response, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, s.PortalURL+"?"+q, nil)
	resp, body := do(t, s.HTTPClient(), req)
	return resp, string(body)
}

func completion(t *testing.T, resp *http.Response, wantPrefix string) url.Values {
	t.Helper()
	loc := resp.Header.Get("Location")
	if resp.StatusCode != http.StatusFound || !strings.HasPrefix(loc, wantPrefix) {
		t.Fatalf("status %d Location %q, want a 302 to %s", resp.StatusCode, loc, wantPrefix)
	}
	u, err := url.Parse(loc)
	if err != nil {
		t.Fatal(err)
	}
	return u.Query()
}

func TestPortalAutoApprove(t *testing.T) {
	s, _ := newSim(t, Options{AutoApprove: true, Printers: []PrinterOptions{
		{Name: "Prusa MK4", Kind: KindOctoPrint, Handler: &testPrinter{name: "octo"}},
		{Name: "Voron 2.4", Kind: KindMoonraker, Handler: &testPrinter{name: "api"}, Frontend: &testPrinter{name: "frontend"}},
	}})
	octo, voron := s.Printers()[0], s.Printers()[1]

	// Mixed-case keys as real apps send them; returnUrl already has a query.
	q := "AppId=octopod&ReturnUrl=" + url.QueryEscape("http://127.0.0.1:7080/callback?state=xyz") +
		"&PrinterID=" + octo.ID + "&OctoPrintApiKeyAppName=OctoPod&authType=enhanced&moonraker=true"
	resp, _ := portalGet(t, s, q)
	if loc := resp.Header.Get("Location"); !strings.HasPrefix(loc, "http://127.0.0.1:7080/callback?state=xyz&success=true&id=") {
		t.Fatalf("Location %q: want the pairs appended with &", loc)
	}
	got := completion(t, resp, "http://127.0.0.1:7080/callback")
	c := s.Connection(got.Get("id"))
	if c == nil {
		t.Fatalf("no connection %q", got.Get("id"))
	}
	cr := c.Credentials()
	want := map[string]string{
		"state": "xyz", "success": "true", "id": cr.ID, "url": "https://app-" + cr.ID + ".octoeverywhere.com",
		"appApiToken": cr.AppAPIToken, "printername": "Prusa MK4", "printerLastKnownLocalIp": "127.0.0.1",
		"userPrinterAccessUrl": "https://octoeverywhere.com/view/Prusa%20MK4",
		"authbasichttpuser":    cr.BasicUser, "authbasichttppassword": cr.BasicPassword,
		"authBearerToken": cr.BearerToken, "octoPrintApiKey": cr.OctoPrintAPIKey,
	}
	for k, v := range want {
		if got.Get(k) != v || v == "" {
			t.Errorf("%s = %q, want %q (non-empty)", k, got.Get(k), v)
		}
	}
	if !regexp.MustCompile(`^[a-z0-9]{32}$`).MatchString(cr.ID) || !regexp.MustCompile(`^[A-Za-z0-9]{10}$`).MatchString(cr.BasicUser) ||
		!regexp.MustCompile(`^[A-Za-z0-9]{32}$`).MatchString(cr.BasicPassword) {
		t.Errorf("formats: id %q user %q password %q", cr.ID, cr.BasicUser, cr.BasicPassword)
	}
	if c.Printer() != octo {
		t.Error("printerId did not select the printer")
	}
	if ps := s.PortalSessions(); len(ps) != 1 || ps[0].Params.Get("appid") != "octopod" || ps[0].Params.Get("moonraker") != "true" ||
		!ps[0].Finished || ps[0].ConnectionID != cr.ID {
		t.Errorf("session %+v", ps)
	}

	// The credentials work on the relay.
	if r, body := do(t, s.HTTPClient(), relayRequest(t, s, c, http.MethodGet, "/api/version", nil, "basic")); r.StatusCode != 200 {
		t.Errorf("relay with the portal's credentials: %d %s", r.StatusCode, body)
	}

	t.Run("fresh secrets, unknown printer, default returnUrl", func(t *testing.T) {
		resp, _ := portalGet(t, s, "appid=devtest&printerid=UNKNOWN")
		got2 := completion(t, resp, "https://octoeverywhere.com/appportal/v1/complete?success=true&")
		for _, k := range []string{"id", "appApiToken", "authbasichttpuser", "authbasichttppassword", "authBearerToken"} {
			if got2.Get(k) == got.Get(k) {
				t.Errorf("%s repeated across sessions", k)
			}
		}
		if got2.Has("octoPrintApiKey") {
			t.Error("octoPrintApiKey without octoPrintApiKeyAppName")
		}
		if s.Connection(got2.Get("id")).Printer() != octo {
			t.Error("an unknown printerId must select the first printer")
		}
	})
	t.Run("octoPrintApiKey rules", func(t *testing.T) {
		for _, tc := range []struct {
			q    string
			want bool
		}{
			{"appid=a&octoprintapikeyappname=X", false},                          // too short
			{"appid=a&octoprintapikeyappname=" + strings.Repeat("x", 61), false}, // too long
			{"appid=a&octoprintapikeyappname=" + strings.Repeat("x", 60), true},
			{"appid=a&octoprintapikeyappname=App&printerid=" + voron.ID, false}, // not OctoPrint
		} {
			resp, _ := portalGet(t, s, tc.q)
			if got := completion(t, resp, "https://").Has("octoPrintApiKey"); got != tc.want {
				t.Errorf("%s: octoPrintApiKey present %v, want %v", tc.q, got, tc.want)
			}
		}
		s.QueueOutcome(OutcomeKeygenFail)
		resp, _ := portalGet(t, s, "appid=a&octoprintapikeyappname=App")
		if got := completion(t, resp, "https://"); got.Get("success") != "true" || got.Has("octoPrintApiKey") {
			t.Errorf("keygen failure: %v", got)
		}
	})
	t.Run("outcomes", func(t *testing.T) {
		s.QueueOutcome(OutcomeFailure)
		s.QueueOutcome(OutcomeNoRedirect)
		s.QueueOutcome(OutcomeNoSupporter)
		ret := "&returnurl=" + url.QueryEscape("octopod://octoeverywhere")
		resp, _ := portalGet(t, s, "appid=a"+ret)
		if got := completion(t, resp, "octopod://octoeverywhere?success=false"); len(got) != 1 {
			t.Errorf("failure carries only success=false: %v", got)
		}
		resp, body := portalGet(t, s, "appid=a"+ret)
		if resp.StatusCode != 200 || resp.Header.Get("Location") != "" || !strings.Contains(body, "<html") {
			t.Errorf("no-redirect: %d %q", resp.StatusCode, resp.Header.Get("Location"))
		}
		resp, _ = portalGet(t, s, "appid=a"+ret)
		if loc := resp.Header.Get("Location"); resp.StatusCode != 302 || !strings.HasPrefix(loc, "/appportal/v1/nosupporterperks?") {
			t.Fatalf("no-supporter: %d %q", resp.StatusCode, loc)
		}
		req, _ := http.NewRequest(http.MethodGet, "https://"+s.Domain+resp.Header.Get("Location"), nil)
		resp, _ = do(t, s.HTTPClient(), req)
		completion(t, resp, "octopod://octoeverywhere?success=false")
		ps := s.PortalSessions()
		if n := len(ps); ps[n-3].Outcome != OutcomeFailure || ps[n-2].Finished || ps[n-1].Outcome != OutcomeNoSupporter || !ps[n-1].Finished {
			t.Errorf("sessions %+v", ps[n-3:])
		}
	})
}

func TestPortalAuthorizePage(t *testing.T) {
	s, _ := newSim(t, Options{CamelCaseCompletion: true})
	client := s.HTTPClient()
	token := regexp.MustCompile(`name="session" value="([A-Za-z0-9]+)"`)

	resp, body := portalGet(t, s, "appid=devtest&applogourl="+url.QueryEscape("https://example.com/logo.png"))
	m := token.FindStringSubmatch(body)
	if resp.StatusCode != 200 || m == nil || !strings.Contains(body, `<form method="post" action="/appportal/v1/authorize">`) ||
		!strings.Contains(body, `value="approve"`) || !strings.Contains(body, `value="cancel"`) || !strings.Contains(body, "https://example.com/logo.png") {
		t.Fatalf("Authorize page %d:\n%s", resp.StatusCode, body)
	}
	post := func(form url.Values) *http.Response {
		req, _ := http.NewRequest(http.MethodPost, "https://"+s.Domain+"/AppPortal/v1/authorize", strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		resp, _ := do(t, client, req)
		return resp
	}
	got := completion(t, post(url.Values{"session": {m[1]}, "action": {"approve"}}), "https://octoeverywhere.com/appportal/v1/complete?")
	if got.Get("authBasicHttpUser") == "" || got.Get("authBasicHttpPassword") == "" || got.Has("authbasichttpuser") {
		t.Errorf("camelCase switch: %v", got)
	}
	if r := post(url.Values{"session": {m[1]}, "action": {"approve"}}); r.StatusCode != 400 {
		t.Errorf("a finished session was accepted again: %d", r.StatusCode)
	}
	if r := post(url.Values{"session": {"forged"}, "action": {"approve"}}); r.StatusCode != 400 {
		t.Errorf("a forged session: %d", r.StatusCode)
	}

	_, body = portalGet(t, s, "appid=devtest")
	got = completion(t, post(url.Values{"session": {token.FindStringSubmatch(body)[1]}, "action": {"cancel"}}), "https://")
	if got.Get("success") != "false" || len(got) != 1 {
		t.Errorf("cancel: %v", got)
	}
	if ps := s.PortalSessions(); !ps[1].Cancelled {
		t.Errorf("session %+v", ps[1])
	}

	// No supporter without AutoApprove: the page shows, its button finishes with success=false.
	s.QueueOutcome(OutcomeNoSupporter)
	_, body = portalGet(t, s, "appid=devtest")
	resp = post(url.Values{"session": {token.FindStringSubmatch(body)[1]}, "action": {"approve"}})
	req, _ := http.NewRequest(http.MethodGet, "https://"+s.Domain+resp.Header.Get("Location"), nil)
	resp, body2 := do(t, client, req)
	m2 := token.FindStringSubmatch(string(body2))
	if resp.StatusCode != 200 || m2 == nil || !strings.Contains(string(body2), "Supporter") {
		t.Fatalf("supporter page %d %s", resp.StatusCode, body2)
	}
	req, _ = http.NewRequest(http.MethodPost, "https://"+s.Domain+"/appportal/v1/nosupporterperks", strings.NewReader("session="+m2[1]))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, _ = do(t, client, req)
	completion(t, resp, "https://octoeverywhere.com/appportal/v1/complete?success=false")
}

func TestPortalErrors(t *testing.T) {
	s, _ := newSim(t, Options{AutoApprove: true})
	for _, q := range []string{"", "returnUrl=https%3A%2F%2Fexample.com", "appid="} {
		resp, body := portalGet(t, s, q)
		if resp.StatusCode != 400 || resp.Header.Get("Location") != "" || !strings.Contains(body, "appid") {
			t.Errorf("%q: %d Location %q", q, resp.StatusCode, resp.Header.Get("Location"))
		}
	}
	for _, path := range []string{"/appportal/v1/complete?success=true", "/appportal/v1/nosupporterperks?appid=devtest", "/AppPortal/V1/Complete"} {
		req, _ := http.NewRequest(http.MethodGet, "https://"+s.Domain+path, nil)
		if resp, body := do(t, s.HTTPClient(), req); resp.StatusCode != 200 || !strings.Contains(string(body), "<html") {
			t.Errorf("%s: %d", path, resp.StatusCode)
		}
	}
	if len(s.Connections()) != 0 {
		t.Error("an error page created a connection")
	}
}
