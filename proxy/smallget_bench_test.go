//go:build unix

package proxy

import (
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/oeproxy/oeproxy/internal/oenet"
	"github.com/oeproxy/oeproxy/webcam"
)

// BenchmarkSmallGET is a 200-byte GET through the handler over real loopback connections on both sides (a TLS
// relay stand-in answering at once), so that what the handler adds per small request shows in ns/op and allocs/op.
func BenchmarkSmallGET(b *testing.B) { benchSmallGET(b, nil, nil) }

// BenchmarkSmallGETBrowser is BenchmarkSmallGET with what a printer UI's request carries (a browser's headers, a
// session cookie) and the daemon's webcam hub in the handler: per-header and per-path costs that curl-like
// requests do not show.
func BenchmarkSmallGETBrowser(b *testing.B) {
	hdr := http.Header{
		"User-Agent":                {"Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36"},
		"Accept":                    {"application/json, text/plain, */*"},
		"Accept-Language":           {"en-GB,en;q=0.9"},
		"Connection":                {"keep-alive"},
		"Cookie":                    {"session_P5001=eyJhbGciOiJIUzI1NiJ9.e30.c2ln; remember_token=abc"},
		"Referer":                   {"http://127.0.0.1:5001/"},
		"Sec-Fetch-Dest":            {"empty"},
		"Sec-Fetch-Mode":            {"cors"},
		"Sec-Fetch-Site":            {"same-origin"},
		"Sec-Ch-Ua":                 {`"Chromium";v="131", "Not_A Brand";v="24"`},
		"Sec-Ch-Ua-Mobile":          {"?0"},
		"Sec-Ch-Ua-Platform":        {`"Linux"`},
		"X-Api-Key":                 {"0123456789ABCDEF0123456789ABCDEF"},
		"Upgrade-Insecure-Requests": {"1"},
	}
	cams := webcam.New(webcam.Options{})
	defer cams.Close()
	benchSmallGET(b, hdr, cams)
}

func benchSmallGET(b *testing.B, hdr http.Header, cams *webcam.Hub) {
	body := strings.Repeat("x", 200)
	relay := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Content-Length", "200")
		_, _ = io.WriteString(w, body)
	}))
	defer relay.Close()
	tr := oenet.Options{ConnectTo: relay.Listener.Addr().String(), MaxConnsPerHost: 128}.Transport()
	tr.TLSClientConfig.InsecureSkipVerify = true // the stand-in's certificate does not name the relay host
	defer tr.CloseIdleConnections()
	local := httptest.NewUnstartedServer(nil)
	p := Printer{Name: "mk4", RelayURL: &url.URL{Scheme: "https", Host: testRelay}, Auth: "basic",
		BasicUser: testUser, BasicPassword: testPassword}
	h, err := New(p, Options{Transport: tr, ListenAddr: local.Listener.Addr().String(), Webcams: cams})
	if err != nil {
		b.Fatal(err)
	}
	local.Config.Handler = h
	local.Start()
	defer local.Close()
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64, DisableCompression: true}}
	target := local.URL + "/api/printer"
	b.ReportAllocs()
	cpu0 := processCPU()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			req, err := http.NewRequest(http.MethodGet, target, nil)
			if err != nil {
				b.Error(err)
				return
			}
			for k, v := range hdr {
				req.Header[k] = v
			}
			resp, err := client.Do(req)
			if err != nil {
				b.Error(err)
				return
			}
			n, _ := io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if n != 200 {
				b.Errorf("body %d bytes", n)
				return
			}
		}
	})
	b.StopTimer()
	// The whole process's CPU (client, handler and relay stand-in together): steadier than ns/op on a busy machine.
	b.ReportMetric(float64((processCPU()-cpu0).Microseconds())/float64(b.N), "cpu-µs/op")
}

func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
