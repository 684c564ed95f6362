package printer_test

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"

	"github.com/oeproxy/oeproxy/oesim/printer"
)

// An OctoPrint-flavoured printer answers the OctoEverywhere plugin's local API, which is how
// oeproxy discovers the printer id before the portal flow.
func ExampleNewOctoPrint() {
	p := printer.NewOctoPrint(printer.OctoPrintOptions{Name: "Prusa MK4", PrinterID: "PRINTER0123456789", APIKey: "secret"})
	srv := httptest.NewServer(p)
	defer srv.Close()
	defer p.Close() // ends webcam streams and WebSockets first

	for _, path := range []string{"/api/plugin/octoeverywhere", "/api/version"} {
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			fmt.Println(err)
			return
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		fmt.Println(resp.StatusCode, string(body))
	}
	// Output:
	// 200 {"PluginVersion":"5.3.1","PrinterId":"PRINTER0123456789"}
	// 403 {"error":"You don't have the permission to access the requested resource. It is either read-protected or not readable by the server."}
}

// A Moonraker-flavoured printer keeps the printer id in Moonraker's database.
func ExampleNewMoonraker() {
	m := printer.NewMoonraker(printer.MoonrakerOptions{Name: "Voron 2.4", PrinterID: "PRINTER0123456789"})
	srv := httptest.NewServer(m.API())
	defer srv.Close()
	defer m.Close()

	resp, err := http.Get(srv.URL + "/server/database/item?namespace=octoeverywhere&key=public.printerId")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	fmt.Println(resp.StatusCode, string(body))
	// Output:
	// 200 {"result":{"key":"public.printerId","namespace":"octoeverywhere","value":"PRINTER0123456789"}}
}
