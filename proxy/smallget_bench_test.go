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
)

// BenchmarkSmallGET is a 200-byte GET through the handler over real loopback connections on both sides (a TLS
// relay stand-in answering at once), so that what the handler adds per small request shows in ns/op and allocs/op.
func BenchmarkSmallGET(b *testing.B) {
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
	h, err := New(p, Options{Transport: tr, ListenAddr: local.Listener.Addr().String()})
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
			resp, err := client.Get(target)
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
