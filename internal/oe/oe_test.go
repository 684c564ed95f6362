package oe

import (
	"errors"
	"strings"
	"testing"
)

func TestEveryCodeDescribed(t *testing.T) {
	for code := 600; code <= 613; code++ {
		c, ok := Describe(code)
		if !ok || c.Code != code || c.Name == "" || c.Meaning == "" || c.Action == "" {
			t.Errorf("Describe(%d) = %+v, %v", code, c, ok)
		}
		if c.Relink && c.Temporary {
			t.Errorf("%d is both temporary and needs re-linking", code)
		}
	}
	for _, code := range []int{0, 200, 599, 614, 699} {
		if _, ok := Describe(code); ok {
			t.Errorf("Describe(%d) claims to know it", code)
		}
		if c := Lookup(code); c.Code != code || c.Meaning == "" || c.Action == "" {
			t.Errorf("Lookup(%d) = %+v", code, c)
		}
	}
}

// The advice after which the credentials are worthless must be a command the user can paste as it is.
func TestRelinkAdviceNamesThePrinter(t *testing.T) {
	for _, code := range []int{603, 604, 606} {
		got := Lookup(code).ActionFor("mk4")
		if !strings.Contains(got, "oeproxy remove mk4 && oeproxy connect --name mk4") || strings.Contains(got, "NAME") {
			t.Errorf("%d: %q", code, got)
		}
	}
	if got := RelinkAdvice("mk4"); !strings.Contains(got, RelinkCommand("mk4")) {
		t.Errorf("RelinkAdvice = %q", got)
	}
	for _, code := range []int{607, 608} {
		if got := Lookup(code).ActionFor("mk4"); !strings.Contains(got, "oeproxy status mk4") {
			t.Errorf("%d: %q", code, got)
		}
	}
}

func TestSupporterPageURL(t *testing.T) {
	for _, tc := range []struct{ portal, app, want string }{
		{"https://octoeverywhere.com/appportal/v1/", "devtest", "https://octoeverywhere.com/appportal/v1/nosupporterperks?appid=devtest"},
		{"https://sim.example:8443/appportal/v1/?x=1", "my app", "https://sim.example:8443/appportal/v1/nosupporterperks?appid=my+app"},
		{"", "devtest", "https://octoeverywhere.com/appportal/v1/nosupporterperks?appid=devtest"},
		{"not a url", "devtest", "https://octoeverywhere.com/appportal/v1/nosupporterperks?appid=devtest"},
	} {
		if got := SupporterPageURL(tc.portal, tc.app); got != tc.want {
			t.Errorf("SupporterPageURL(%q, %q) = %q, want %q", tc.portal, tc.app, got, tc.want)
		}
	}
}

func TestCheckLiveLinkHours(t *testing.T) {
	for h, ok := range map[int]bool{0: true, 1: true, 24: true, 17520: true, -1: false, 17521: false} {
		if err := CheckLiveLinkHours(h); (err == nil) != ok || (err != nil && !errors.Is(err, ErrInvalidArgument)) {
			t.Errorf("CheckLiveLinkHours(%d) = %v", h, err)
		}
	}
}

func TestCheckWebhookURL(t *testing.T) {
	for raw, ok := range map[string]bool{
		"https://hooks.example/x?secret=s3cr3t": true,
		"HTTPS://hooks.example/":                true,
		"http://hooks.example/":                 false,
		"https:///path":                         false,
		"https://hooks.example/a b":             false,
		"://":                                   false,
	} {
		err := CheckWebhookURL(raw)
		if (err == nil) != ok {
			t.Errorf("CheckWebhookURL(%q) = %v", raw, err)
		}
		if err != nil && strings.Contains(err.Error(), "s3cr3t") {
			t.Errorf("message repeats the URL: %v", err)
		}
	}
	if h := WebhookHost("https://hooks.example:8443/x?secret=1"); h != "hooks.example:8443" {
		t.Errorf("WebhookHost = %q", h)
	}
}
