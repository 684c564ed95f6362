package proxy_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"

	"github.com/oeproxy/oeproxy/internal/oenet"
	"github.com/oeproxy/oeproxy/oesim"
	"github.com/oeproxy/oeproxy/proxy"
)

// ExampleNew serves a simulated OctoPrint printer on a local port through its App Connection, the way the
// daemon does for every stored printer. A slicer would then be pointed at the local URL.
func ExampleNew() {
	sim, err := oesim.Start(context.Background(), oesim.Options{Printers: []oesim.PrinterOptions{{Name: "Prusa MK4", Kind: oesim.KindOctoPrint}}})
	if err != nil {
		panic(err)
	}
	defer sim.Close()
	creds := sim.Connect(sim.Printers()[0]).Credentials()
	relay, _ := url.Parse(creds.URL)

	transport := oenet.Options{ConnectTo: sim.Addr, RootCAs: sim.RootCAs}.Transport()
	defer transport.CloseIdleConnections()
	h, err := proxy.New(
		proxy.Printer{Name: "mk4", RelayURL: relay, Auth: "basic", BasicUser: creds.BasicUser, BasicPassword: creds.BasicPassword},
		proxy.Options{Transport: transport},
	)
	if err != nil {
		panic(err)
	}
	defer h.Close()
	local := httptest.NewServer(h) // the daemon uses its own listener on 127.0.0.1:<port>
	defer local.Close()

	req, _ := http.NewRequest("GET", local.URL+"/api/version", nil)
	req.Header.Set("X-Api-Key", creds.OctoPrintAPIKey) // printer auth travels as X-Api-Key
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		panic(err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	http.DefaultClient.CloseIdleConnections()
	fmt.Println(resp.StatusCode)
	// Output: 200
}
