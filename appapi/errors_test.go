package appapi

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
)

var sentinels = map[int]*OEError{
	600: ErrUnknown600, 601: ErrPrinterOffline601, 602: ErrTimeout602, 603: ErrNotFound603, 604: ErrRevoked604,
	605: ErrNoSupporter605, 606: ErrBadCredentials606, 607: ErrDownloadLimit607, 608: ErrUploadLimit608,
	609: ErrWebcamLimit609, 610: ErrPluginUpdate610, 611: ErrNoBeta611, 612: ErrPluginError612, 613: ErrNoActivePrint613,
}

func TestDescribeCoversEveryCode(t *testing.T) {
	permanent := map[int]bool{603: true, 604: true, 606: true, 607: true, 608: true}
	for code := 600; code <= 613; code++ {
		d, ok := Describe(code)
		if !ok || d.Code != code || d.Name == "" || d.Meaning == "" || d.Action == "" {
			t.Errorf("Describe(%d) = %+v, %v", code, d, ok)
		}
		if d.Temporary == permanent[code] {
			t.Errorf("Describe(%d).Temporary = %v, research §3.6 says the opposite", code, d.Temporary)
		}
		if s := sentinels[code]; s == nil || s.Code != code {
			t.Errorf("no sentinel for %d", code)
		}
	}
	for _, code := range []int{0, 200, 400, 599, 614, 699} {
		if _, ok := Describe(code); ok {
			t.Errorf("Describe(%d) claims to know it", code)
		}
	}
}

// TestErrorStatuses answers every error status to a GET (Info) and a POST (Live Link) and checks the typed error.
func TestErrorStatuses(t *testing.T) {
	type want struct {
		is     error // errors.Is must hold
		code   int   // CodeOf
		detail bool  // the server's message must appear
	}
	cases := map[int]want{
		400: {is: ErrBadRequest, detail: true},
		429: {is: ErrRateLimited},
		500: {detail: true},
		404: {detail: true},
		302: {},
		650: {code: 650, detail: true}, // a code OctoEverywhere may add later
	}
	for code, s := range sentinels {
		cases[code] = want{is: s, code: code, detail: true}
	}
	for status, w := range cases {
		for _, shape := range []string{"envelope", "bare-error", "text"} {
			t.Run(fmt.Sprintf("%d/%s", status, shape), func(t *testing.T) {
				msg := "Server says " + fmt.Sprint(status) + " for " + testToken
				f := newFakeAPI(t, func(rw http.ResponseWriter, r *http.Request, n int) {
					switch shape {
					case "envelope":
						reply(rw, status, fmt.Sprintf(`{"Status":%d,"Error":%q,"IsUserError":false,"Result":null}`, status, msg))
					case "bare-error":
						reply(rw, status, fmt.Sprintf(`{"Error":%q}`, msg))
					default:
						rw.Header().Set("Location", "https://elsewhere.example/")
						rw.WriteHeader(status)
						_, _ = rw.Write([]byte(msg + "\n"))
					}
				})
				c := f.client(Options{RetryMax: -1})
				_, errGet := c.Info(context.Background(), testToken)
				_, errPost := c.CreateLiveLink(context.Background(), testToken, LiveLinkRequest{Hours: 1})
				for _, err := range []error{errGet, errPost} {
					if err == nil {
						t.Fatal("no error")
					}
					if w.is != nil && !errors.Is(err, w.is) {
						t.Errorf("errors.Is(%v, %v) is false", err, w.is)
					}
					if got := CodeOf(err); got != w.code {
						t.Errorf("CodeOf = %d, want %d", got, w.code)
					}
					if strings.Contains(err.Error(), testToken) {
						t.Errorf("error shows the token: %v", err)
					}
					if w.detail && !strings.Contains(err.Error(), "Server says") {
						t.Errorf("error lost the server's message: %v", err)
					}
					for other, s := range sentinels {
						if other != w.code && errors.Is(err, s) {
							t.Errorf("error %v also matches %d", err, other)
						}
					}
				}
				var oe *OEError
				if w.code != 0 {
					if !errors.As(errGet, &oe) || oe.Action == "" || !strings.Contains(errGet.Error(), oe.Action) {
						t.Errorf("6xx error does not say what to do: %v", errGet)
					}
				}
			})
		}
	}
}

func TestEnvelopeErrorInsideSuccess(t *testing.T) {
	f := newFakeAPI(t, func(w http.ResponseWriter, r *http.Request, n int) {
		reply(w, 200, `{"Status":604,"Error":"Revoked.","IsUserError":false,"Result":null}`)
	})
	_, err := f.client(Options{RetryMax: -1}).Info(context.Background(), testToken)
	if !errors.Is(err, ErrRevoked604) {
		t.Fatalf("err %v, want 604", err)
	}
}

func TestRedirectIsNotFollowed(t *testing.T) {
	other := newFakeAPI(t, func(w http.ResponseWriter, r *http.Request, n int) { reply(w, 200, infoJSON) })
	f := newFakeAPI(t, func(w http.ResponseWriter, r *http.Request, n int) {
		http.Redirect(w, r, other.srv.URL+r.URL.Path, http.StatusTemporaryRedirect)
	})
	_, err := f.client(Options{}).Info(context.Background(), testToken)
	var he *HTTPError
	if !errors.As(err, &he) || he.StatusCode != http.StatusTemporaryRedirect {
		t.Fatalf("err %v, want HTTPError 307", err)
	}
	if n := len(other.requests()); n != 0 {
		t.Fatalf("the redirect target got %d requests (and the token)", n)
	}
}

func TestOEErrorIs(t *testing.T) {
	err := fmt.Errorf("wrapped: %w", newOEError(604, "gone"))
	if !errors.Is(err, ErrRevoked604) || errors.Is(err, ErrNotFound603) || errors.Is(err, ErrRateLimited) {
		t.Fatal("errors.Is on OEError compares codes")
	}
	if errors.Is(errors.New("x"), ErrRevoked604) || CodeOf(errors.New("x")) != 0 || CodeOf(nil) != 0 {
		t.Fatal("plain errors are not OE errors")
	}
	if !strings.Contains(err.Error(), `"gone"`) {
		t.Fatalf("detail missing: %v", err)
	}
}
