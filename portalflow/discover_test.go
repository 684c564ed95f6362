package portalflow

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

const testAPIKey = "PrinterAPIKEYs3cr3t77"

func jsonHandler(body string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(body))
	}
}

func discover(t *testing.T, base, apiKey string) (string, error) {
	t.Helper()
	return discoverWithin(t, base, apiKey, DiscoverTimeout)
}

func discoverWithin(t *testing.T, base, apiKey string, timeout time.Duration) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	id, warn := discoverPrinterID(ctx, base, apiKey, &http.Client{Transport: tr}, timeout)
	if warn != nil && strings.Contains(warn.Error(), testAPIKey) {
		t.Fatalf("warning shows the API key: %v", warn)
	}
	return id, warn
}

func TestDiscoverPrinterID(t *testing.T) {
	id40 := testPrinterID[:40]
	octo := http.NewServeMux()
	octo.HandleFunc("GET /api/plugin/octoeverywhere", jsonHandler(`{"PluginVersion":"5.3.1","PrinterId":"`+testPrinterID+`"}`))
	octo.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) { http.NotFound(w, r) })

	moon := http.NewServeMux()
	moon.HandleFunc("GET /moonraker/server/database/item", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("namespace") != "octoeverywhere" || r.URL.Query().Get("key") != "public.printerId" {
			http.Error(w, `{"error":{"code":404}}`, http.StatusNotFound)
			return
		}
		jsonHandler(`{"result":{"namespace":"octoeverywhere","key":"public.printerId","value":"`+id40+`"}}`)(w, r)
	})
	moon.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) { http.NotFound(w, r) })

	companion := jsonHandler(`{"PluginId":"` + testPrinterID + `","IsConnectedToOctoEverywhere":true,"IsConnectedToPrinter":true,"IsAccountLinked":true}`)

	var keyed atomic.Value
	oldPlugin := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if k := r.Header.Get("X-Api-Key"); k != "" {
			keyed.Store(k)
		}
		if r.URL.Path != "/api/plugin/octoeverywhere" {
			http.NotFound(w, r)
			return
		}
		if r.Header.Get("X-Api-Key") != testAPIKey {
			http.Error(w, "Forbidden", http.StatusForbidden)
			return
		}
		jsonHandler(`{"PrinterId":"`+testPrinterID+`"}`)(w, r)
	})

	octoUI := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/" {
			w.Write([]byte("<html>OctoPrint login</html>"))
			return
		}
		http.NotFound(w, r)
	})
	badID := jsonHandler(`{"PrinterId":"abc123","PluginId":"` + strings.ToLower(testPrinterID) + `"}`)

	for _, tc := range []struct {
		name     string
		h        http.Handler
		path     string
		key      string
		want     string
		warnText string
	}{
		{name: "OctoPrint plugin", h: octo, want: testPrinterID},
		{name: "Moonraker database under a base path", h: moon, path: "/moonraker/", want: id40},
		{name: "companion local API", h: companion, want: testPrinterID},
		{name: "older plugin with API key", h: oldPlugin, key: testAPIKey, want: testPrinterID},
		{name: "older plugin without API key", h: oldPlugin, warnText: "needs an OctoPrint API key"},
		{name: "plugin missing", h: octoUI, warnText: "not installed"},
		{name: "ID of the wrong shape", h: badID, warnText: "not an OctoEverywhere printer ID"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewServer(tc.h)
			defer srv.Close()
			id, warn := discover(t, srv.URL+tc.path, tc.key)
			if tc.want != "" {
				if warn != nil || id != tc.want {
					t.Fatalf("got %q, %v; want %q", id, warn, tc.want)
				}
				return
			}
			if id != "" || !errors.Is(warn, ErrPrinterIDNotFound) || !strings.Contains(warn.Error(), tc.warnText) {
				t.Fatalf("got %q, %v; want a warning with %q", id, warn, tc.warnText)
			}
		})
	}
	if got, _ := keyed.Load().(string); got != testAPIKey {
		t.Fatalf("X-Api-Key not sent: %q", got)
	}
}

func TestDiscoverPrinterIDWithoutScheme(t *testing.T) {
	srv := httptest.NewServer(jsonHandler(`{"PluginId":"` + testPrinterID + `"}`))
	defer srv.Close()
	id, warn := discover(t, strings.TrimPrefix(srv.URL, "http://"), "")
	if warn != nil || id != testPrinterID {
		t.Fatalf("got %q, %v", id, warn)
	}
}

// TestDiscoverPrinterIDNoRedirect: a redirect is not followed, so the API key cannot travel to another host.
func TestDiscoverPrinterIDNoRedirect(t *testing.T) {
	var leaked atomic.Bool
	elsewhere := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("X-Api-Key") != "" {
			leaked.Store(true)
		}
		jsonHandler(`{"PrinterId":"`+testPrinterID+`","PluginId":"`+testPrinterID+`"}`)(w, r)
	}))
	defer elsewhere.Close()
	redirector := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, elsewhere.URL+r.URL.Path, http.StatusFound)
	}))
	defer redirector.Close()
	id, warn := discover(t, redirector.URL, testAPIKey)
	if id != "" || warn == nil || leaked.Load() {
		t.Fatalf("followed a redirect: id %q warn %v leaked %v", id, warn, leaked.Load())
	}
}

func TestDiscoverPrinterIDTimeout(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-release:
		}
	}))
	defer srv.Close()
	defer close(release)
	id, warn := discoverWithin(t, srv.URL, "", 200*time.Millisecond)
	if id != "" || !errors.Is(warn, ErrPrinterIDNotFound) || strings.Count(warn.Error(), "no answer within 200ms") != 3 {
		t.Fatalf("got %q, %v", id, warn)
	}
}

func TestDiscoverPrinterIDUnreachableAndBadURL(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	for _, u := range []string{"http://" + addr, "", "ftp://printer", "http://[::1"} {
		id, warn := discover(t, u, testAPIKey)
		if id != "" || !errors.Is(warn, ErrPrinterIDNotFound) {
			t.Fatalf("%q: got %q, %v", u, id, warn)
		}
	}
	// A password in the printer URL never reaches the warning.
	_, warn := discover(t, "http://user:"+testAPIKey+"@"+addr, "")
	if warn == nil || strings.Contains(warn.Error(), testAPIKey) {
		t.Fatalf("warning: %v", warn)
	}
	// A cancelled context ends discovery with a warning, not a hang.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, warn := DiscoverPrinterID(ctx, "http://"+addr, "", nil); !errors.Is(warn, ErrPrinterIDNotFound) {
		t.Fatalf("cancelled: %v", warn)
	}
}
