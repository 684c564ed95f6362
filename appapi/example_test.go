package appapi_test

import (
	"context"
	"errors"
	"fmt"

	"github.com/oeproxy/oeproxy/appapi"
	"github.com/oeproxy/oeproxy/internal/oenet"
	"github.com/oeproxy/oeproxy/oesim"
)

// Example asks OctoEverywhere (here the offline simulation, reached through connect-to as the daemon does) about
// a printer, creates a Live Link and reacts to a revoked connection.
func Example() {
	ctx := context.Background()
	sim, err := oesim.Start(ctx, oesim.Options{})
	if err != nil {
		panic(err)
	}
	defer sim.Close()
	conn := sim.Connect(sim.Printers()[0])
	token := conn.Credentials().AppAPIToken // from the store; never print it

	tr := oenet.Options{ConnectTo: sim.Addr, RootCAs: sim.RootCAs}.Transport()
	defer tr.CloseIdleConnections()
	client, err := appapi.New(appapi.Options{BaseURL: "https://octoeverywhere.com", Transport: tr})
	if err != nil {
		panic(err)
	}

	info, err := client.Info(ctx, token)
	if err != nil {
		panic(err)
	}
	fmt.Printf("%s online=%v upload limit=%d MiB\n", info.PrinterName, info.IsOnline, info.Limits.MaxUploadFileSizeBytes>>20)

	_, err = client.CreateLiveLink(ctx, token, appapi.LiveLinkRequest{UntilPrintDone: true})
	fmt.Println("no print running:", errors.Is(err, appapi.ErrNoActivePrint613))

	conn.Revoke()
	_, err = client.Info(ctx, token)
	var oe *appapi.OEError
	if errors.Is(err, appapi.ErrRevoked604) && errors.As(err, &oe) {
		fmt.Println("revoked; temporary:", oe.Temporary)
	}
	// Output:
	// Prusa MK4 online=true upload limit=500 MiB
	// no print running: true
	// revoked; temporary: false
}

// ExampleDescribe shows the table of OctoEverywhere codes that the proxy also uses to explain relay errors.
func ExampleDescribe() {
	d, _ := appapi.Describe(605)
	fmt.Println(d.Code, d.Name, "temporary:", d.Temporary)
	// Output: 605 no Supporter Perks temporary: true
}

// ExampleRateLimitError shows how a caller learns when it may ask Gadget again.
func ExampleRateLimitError() {
	err := fmt.Errorf("gadget: %w", &appapi.RateLimitError{Wait: 4e9})
	var rl *appapi.RateLimitError
	if errors.As(err, &rl) {
		fmt.Println("ask again in", rl.Wait)
	}
	// Output: ask again in 4s
}
