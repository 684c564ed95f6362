package proxy

import (
	"bytes"
	"io"
	"net/http"
	"reflect"
	"sort"
	"strings"
	"testing"

	"github.com/mccutchen/go-httpbin/v2/httpbin"
)

// hopOrVolatile are response headers that legitimately differ between two answers or two hops.
var hopOrVolatile = []string{"Date", "Connection", "Keep-Alive", "Transfer-Encoding", "Proxy-Connection", "Te", "Trailer", "Upgrade"}

// TestDifferentialHTTPBin sends the same requests to the relay directly (the credential set by the test) and
// through oeproxy, with go-httpbin as the printer, and expects the same status, body and headers, less hop
// headers and with the relay's URLs in Location read as the local origin.
func TestDifferentialHTTPBin(t *testing.T) {
	e := startSim(t, httpbin.New(), nil)
	big := bytes.Repeat([]byte("0123456789abcdef"), 1<<16) // 1 MiB
	tests := []struct {
		method, path string
		body         []byte
		chunked      bool
		header       http.Header
	}{
		{method: "GET", path: "/get?a=1&b=two&b=2&c=%2F%20x"},
		{method: "HEAD", path: "/get"},
		{method: "POST", path: "/post", body: []byte(`{"hello":"world"}`), header: http.Header{"Content-Type": {"application/json"}}},
		{method: "PUT", path: "/put", body: big, header: http.Header{"Content-Type": {"application/octet-stream"}}},
		{method: "PATCH", path: "/patch", body: big[:300000], chunked: true},
		{method: "DELETE", path: "/delete?x=1"},
		{method: "GET", path: "/anything/some/path", header: http.Header{"X-Api-Key": {"printer-key"}, "User-Agent": {"OrcaSlicer/2.1"}}},
		{method: "GET", path: "/stream/5"},
		{method: "GET", path: "/drip?numbytes=20&duration=0.2&delay=0&code=200"},
		{method: "GET", path: "/redirect/3"},
		{method: "GET", path: "/absolute-redirect/2"},
		{method: "GET", path: "/redirect-to?url=/get&status_code=307"},
		{method: "GET", path: "/cookies/set?k1=v1&k2=v2"},
		{method: "GET", path: "/gzip"},
		{method: "GET", path: "/range/1000", header: http.Header{"Range": {"bytes=10-99"}}},
		{method: "GET", path: "/status/418"},
		{method: "GET", path: "/status/500"},
		{method: "GET", path: "/bytes/5000?seed=42"},
		{method: "GET", path: "/stream-bytes/20000?seed=7&chunk_size=1000"},
		{method: "GET", path: "/response-headers?X-Custom=one&X-Custom=two"},
		{method: "GET", path: "/etag/abc", header: http.Header{"If-None-Match": {`"abc"`}}},
	}
	for _, tt := range tests {
		t.Run(tt.method+" "+tt.path, func(t *testing.T) {
			mk := func() io.Reader {
				if tt.body == nil {
					return nil
				}
				if tt.chunked {
					return io.MultiReader(bytes.NewReader(tt.body)) // unknown length: sent chunked
				}
				return bytes.NewReader(tt.body)
			}
			direct := e.direct(t, tt.method, tt.path, mk(), tt.header)
			dBody, err := io.ReadAll(direct.Body)
			direct.Body.Close()
			if err != nil {
				t.Fatal(err)
			}
			r := newReq(t, tt.method, e.url(tt.path), mk())
			for k, v := range tt.header {
				r.Header[k] = v
			}
			proxied, pBody := do(t, localClient(), r)

			if direct.StatusCode != proxied.StatusCode {
				t.Errorf("status: direct %d, proxied %d", direct.StatusCode, proxied.StatusCode)
			}
			if !bytes.Equal(dBody, pBody) {
				t.Errorf("body differs: direct %d bytes, proxied %d bytes\ndirect: %.300s\nproxied: %.300s", len(dBody), len(pBody), dBody, pBody)
			}
			dh, ph := direct.Header.Clone(), proxied.Header.Clone()
			for _, k := range hopOrVolatile {
				dh.Del(k)
				ph.Del(k)
			}
			for _, k := range []string{"Location", "Content-Location"} {
				if v := dh.Get(k); v != "" {
					dh.Set(k, strings.Replace(v, e.creds.URL, e.local.URL, 1))
				}
			}
			// One intended difference: cookies are made to work on the plain-http local origin.
			for i, c := range dh["Set-Cookie"] {
				dh["Set-Cookie"][i] = rewriteSetCookie(c, e.creds.Host)
			}
			// The other intended difference: a printer that says nothing about framing may be framed by itself only.
			if dh.Get("X-Frame-Options") == "" && !strings.Contains(strings.Join(dh["Content-Security-Policy"], ","), "frame-ancestors") {
				dh["Content-Security-Policy"] = append(dh["Content-Security-Policy"], "frame-ancestors 'self'")
			}
			// go-httpbin sets cookies in map order, so two answers list them differently.
			sort.Strings(dh["Set-Cookie"])
			sort.Strings(ph["Set-Cookie"])
			if !reflect.DeepEqual(dh, ph) {
				t.Errorf("headers differ:\ndirect  %v\nproxied %v", dh, ph)
			}
			if direct.ContentLength != proxied.ContentLength {
				t.Errorf("Content-Length: direct %d, proxied %d", direct.ContentLength, proxied.ContentLength)
			}
		})
	}
}
