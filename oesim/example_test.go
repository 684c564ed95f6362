package oesim_test

import (
	"context"
	"fmt"
	"io"
	"net/http"

	"github.com/oeproxy/oeproxy/oesim"
)

// Start a simulated OctoEverywhere with one printer, create an App Connection and call the printer through
// the relay with the connection's Basic credential, then see what the relay recorded.
func ExampleStart() {
	sim, err := oesim.Start(context.Background(), oesim.Options{
		Printers: []oesim.PrinterOptions{{
			Name: "Bench printer",
			Kind: oesim.KindGeneric,
			Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				fmt.Fprintf(w, "printer got %s %s", r.Method, r.URL.Path)
			}),
		}},
	})
	if err != nil {
		panic(err)
	}
	defer sim.Close()

	conn := sim.Connect(nil) // as if the portal had succeeded
	cr := conn.Credentials()

	req, _ := http.NewRequest(http.MethodGet, cr.URL+"/api/version", nil)
	req.SetBasicAuth(cr.BasicUser, cr.BasicPassword)
	resp, err := sim.HTTPClient().Do(req) // dials sim.Addr, keeps the app-<id> host name
	if err != nil {
		panic(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	fmt.Println(resp.StatusCode, string(body))

	req.Header.Del("Authorization")
	resp, _ = sim.HTTPClient().Do(req)
	resp.Body.Close()
	fmt.Println(resp.StatusCode)

	for _, r := range conn.Requests() {
		fmt.Println(r.Method, r.Path, r.Status)
	}
	// Output:
	// 200 printer got GET /api/version
	// 606
	// GET /api/version 200
	// GET /api/version 606
}
