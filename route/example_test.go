package route

import (
	"context"
	"fmt"

	"github.com/oeproxy/oeproxy/oesim"
)

// A Moonraker printer that answers on its LAN address proves itself (the nonce written through the relay is read
// back over the LAN), and the router sends requests there; the same address answered by another device does not.
func Example() {
	sim, _ := oesim.Start(context.Background(), oesim.Options{Printers: []oesim.PrinterOptions{{Name: "Voron", Kind: oesim.KindMoonraker, LAN: true}}})
	defer sim.Close()
	voron := sim.Printers()[0]
	// In oeproxy the relay transport is proxy.RelayTransport; relayRT is the test's stand-in.
	relay := relayRT{rt: sim.HTTPClient().Transport, cred: sim.Connect(voron).Credentials()}
	lan := NewLANTransport()
	defer lan.CloseIdleConnections()

	proofs := make(chan Proof, 4)
	r, err := New(Options{Printer: "voron", Mode: ModeAuto, LANURLs: []string{voron.LANURL}, Relay: relay, LAN: lan,
		Hooks: Hooks{Proof: func(p Proof) { proofs <- p }}})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("before any proof:", r.Decide().Route)
	r.Start(context.Background())
	defer r.Close()
	p := <-proofs
	fmt.Println("proof:", p.OK, p.Strength)

	_ = voron.SetLAN(oesim.LANImpostorSameID) // another network: a device that copied the printer id
	r.Recheck()
	p = <-proofs
	fmt.Println("impostor:", p.OK, p.Mismatch)
	// Output:
	// before any proof: relay
	// proof: true nonce
	// impostor: false true
}
