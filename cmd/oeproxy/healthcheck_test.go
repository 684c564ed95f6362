package main

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"go.uber.org/goleak"
)

func TestHealthcheck(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok\n")) })
	mux.HandleFunc("GET /down", func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, "store closed\nsecond line", http.StatusServiceUnavailable)
	})
	mux.HandleFunc("GET /moved", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/healthz", http.StatusFound)
	})
	mux.HandleFunc("GET /stuck", func(_ http.ResponseWriter, r *http.Request) { <-r.Context().Done() })
	srv := httptest.NewServer(mux)
	defer srv.Close()

	closed := httptest.NewServer(http.NotFoundHandler())
	closedURL := closed.URL
	closed.Close()

	cases := []struct {
		name    string
		args    []string
		env     string // OEPROXY_ADMIN_LISTEN, when set
		code    int
		stdout  string
		stderrs []string
	}{
		{"200 via --url", []string{"--url", srv.URL + "/healthz"}, "", 0, "healthy: " + srv.URL + "/healthz", nil},
		{"URL from admin.listen", nil, srv.Listener.Addr().String(), 0, "healthy: " + srv.URL + "/healthz", nil},
		{"503 with reason", []string{"--url", srv.URL + "/down"}, "", 1, "", []string{"503 Service Unavailable", "store closed second line"}},
		{"404", []string{"--url", srv.URL + "/nope"}, "", 1, "", []string{"404"}},
		{"redirect is not health", []string{"--url", srv.URL + "/moved"}, "", 1, "", []string{"302"}},
		{"nothing listening", []string{"--url", closedURL + "/healthz"}, "", 1, "", []string{"connection refused", "oeproxy serve"}},
		{"timeout", []string{"--url", srv.URL + "/stuck", "--timeout", "200ms"}, "", 1, "", []string{"no answer within 200ms"}},
		{"bad admin.listen", nil, "nonsense", 1, "", []string{"admin.listen"}},
		{"bad --url", []string{"--url", "127.0.0.1:7080/healthz"}, "", 2, "", []string{"absolute http(s) URL"}},
		{"bad --timeout", []string{"--url", srv.URL + "/healthz", "--timeout", "0s"}, "", 2, "", []string{"--timeout"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if c.env != "" {
				t.Setenv("OEPROXY_ADMIN_LISTEN", c.env)
			}
			code, out, errOut := runCmd(t, "", append([]string{"healthcheck"}, c.args...)...)
			if code != c.code {
				t.Fatalf("exit %d, want %d (stdout %q, stderr %q)", code, c.code, out, errOut)
			}
			if !strings.Contains(out, c.stdout) {
				t.Errorf("stdout %q lacks %q", out, c.stdout)
			}
			for _, s := range c.stderrs {
				if !strings.Contains(errOut, s) {
					t.Errorf("stderr %q lacks %q", errOut, s)
				}
			}
			// Configuration problems are listed one per line by design (see oneLine); every other reason is one line.
			if n := strings.Count(strings.TrimSpace(errOut), "\n"); n != 0 && !strings.Contains(errOut, "problem(s):") {
				t.Errorf("want a one-line reason, got %q", errOut)
			}
		})
	}
}

func TestHealthzURL(t *testing.T) {
	cases := []struct{ listen, want string }{
		{"127.0.0.1:7080", "http://127.0.0.1:7080/healthz"},
		{"0.0.0.0:7080", "http://127.0.0.1:7080/healthz"},
		{":7081", "http://127.0.0.1:7081/healthz"},
		{"[::]:7080", "http://[::1]:7080/healthz"},
		{"[::1]:9", "http://[::1]:9/healthz"},
		{"localhost:7080", "http://localhost:7080/healthz"},
	}
	for _, c := range cases {
		got, err := healthzURL(c.listen)
		if err != nil || got != c.want {
			t.Errorf("healthzURL(%q) = %q, %v; want %q", c.listen, got, err, c.want)
		}
	}
	for _, bad := range []string{"7080", "127.0.0.1", "127.0.0.1:"} {
		if _, err := healthzURL(bad); err == nil {
			t.Errorf("healthzURL(%q): want an error", bad)
		}
	}
}
