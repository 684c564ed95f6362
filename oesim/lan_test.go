package oesim

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"syscall"
	"testing"
)

func lanSim(t *testing.T) (*Sim, *Printer, *Printer) {
	t.Helper()
	s, _ := newSim(t, Options{Printers: []PrinterOptions{
		{Name: "Mini", Kind: KindOctoPrint, LAN: true},
		{Name: "Voron", Kind: KindMoonraker, LAN: true},
	}})
	ps := s.Printers()
	return s, ps[0], ps[1]
}

// lanGet reads a JSON value at keys from the LAN address, or returns the status when it is not 200.
func lanGet(t *testing.T, url string, keys ...string) (any, int) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return nil, resp.StatusCode
	}
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatalf("GET %s: %v: %s", url, err, b)
	}
	for _, k := range keys {
		m, _ := v.(map[string]any)
		v = m[k]
	}
	return v, resp.StatusCode
}

const dbPrinterID = "/server/database/item?namespace=octoeverywhere&key=public.printerId"

func TestLANAnswersAsThePrinter(t *testing.T) {
	t.Parallel()
	s, mini, voron := lanSim(t)
	for _, p := range []*Printer{mini, voron} {
		if !strings.HasPrefix(p.LANURL, "http://"+LANAddr+":") {
			t.Fatalf("%s: LANURL %q is not on %s", p.Name, p.LANURL, LANAddr)
		}
	}
	if id, _ := lanGet(t, mini.LANURL+"/api/plugin/octoeverywhere", "PrinterId"); id != mini.ID {
		t.Fatalf("OctoPrint plugin API on the LAN: id %v, want %s", id, mini.ID)
	}
	if id, _ := lanGet(t, voron.LANURL+dbPrinterID, "result", "value"); id != voron.ID {
		t.Fatalf("Moonraker database on the LAN: id %v, want %s", id, voron.ID)
	}
	// The Moonraker kind's frontend paths are there too (port 80 of MainsailOS).
	if resp, err := http.Get(voron.LANURL + "/"); err != nil || resp.StatusCode != 200 {
		t.Fatalf("frontend on the LAN: %v %v", resp, err)
	} else {
		resp.Body.Close()
	}

	// A value written through the relay is read back on the LAN: the same printer.
	c := s.Connect(voron)
	req := relayRequest(t, s, c, "POST", "/server/database/item", strings.NewReader(`{"namespace":"oeproxy","key":"proof","value":"NONCE-1"}`), "")
	req.Header.Set("Content-Type", "application/json")
	if resp, b := do(t, s.HTTPClient(), req); resp.StatusCode != 200 {
		t.Fatalf("write through the relay: %d %s", resp.StatusCode, b)
	}
	if v, _ := lanGet(t, voron.LANURL+"/server/database/item?namespace=oeproxy&key=proof", "result", "value"); v != "NONCE-1" {
		t.Fatalf("nonce read on the LAN: %v", v)
	}
	got := voron.LANRequests()
	if len(got) == 0 || got[0].Host != LANPrinter || got[0].Path != "/server/database/item" {
		t.Fatalf("LAN requests not recorded: %+v", got)
	}
	for _, r := range got {
		if r.Header.Get("Authorization") != "" {
			t.Fatal("the relay's credential reached the LAN address")
		}
	}
}

func TestLANImpostors(t *testing.T) {
	t.Parallel()
	s, mini, voron := lanSim(t)
	c := s.Connect(voron)

	if err := mini.SetLAN(LANImpostorOtherID); err != nil {
		t.Fatal(err)
	}
	if id, _ := lanGet(t, mini.LANURL+"/api/plugin/octoeverywhere", "PrinterId"); id == mini.ID || id == nil {
		t.Fatalf("impostor with another id reports %v", id)
	}
	if err := voron.SetLAN(LANImpostorSameID); err != nil {
		t.Fatal(err)
	}
	if id, _ := lanGet(t, voron.LANURL+dbPrinterID, "result", "value"); id != voron.ID {
		t.Fatalf("impostor with the copied id reports %v", id)
	}
	req := relayRequest(t, s, c, "POST", "/server/database/item?namespace=oeproxy&key=proof&value=NONCE-2", nil, "")
	if resp, b := do(t, s.HTTPClient(), req); resp.StatusCode != 200 {
		t.Fatalf("write through the relay: %d %s", resp.StatusCode, b)
	}
	if _, status := lanGet(t, voron.LANURL+"/server/database/item?namespace=oeproxy&key=proof"); status != 404 {
		t.Fatalf("the copied-id impostor has the nonce written to the real printer (status %d)", status)
	}
	reqs := voron.LANRequests()
	if last := reqs[len(reqs)-1]; last.Host != LANImpostorSameID {
		t.Fatalf("request recorded as answered by %v", last.Host)
	}
	// Back home: the real printer again, with the nonce.
	if err := voron.SetLAN(LANPrinter); err != nil {
		t.Fatal(err)
	}
	if v, _ := lanGet(t, voron.LANURL+"/server/database/item?namespace=oeproxy&key=proof", "result", "value"); v != "NONCE-2" {
		t.Fatalf("real printer's nonce: %v", v)
	}
}

func TestLANGoneCutsStreamsAndRefuses(t *testing.T) {
	t.Parallel()
	_, mini, _ := lanSim(t)
	resp, err := http.Get(mini.LANURL + "/webcam/?action=stream")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if _, err := resp.Body.Read(make([]byte, 512)); err != nil {
		t.Fatalf("stream did not start: %v", err)
	}
	if err := mini.SetLAN(LANGone); err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(io.Discard, resp.Body); err == nil {
		t.Fatal("the stream ended cleanly; it should be cut when the printer vanishes")
	}
	_, err = http.Get(mini.LANURL + "/api/plugin/octoeverywhere")
	if !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("after LANGone: %v, want connection refused", err)
	}
	if err := mini.SetLAN(LANPrinter); err != nil {
		t.Fatal(err)
	}
	if id, _ := lanGet(t, mini.LANURL+"/api/plugin/octoeverywhere", "PrinterId"); id != mini.ID {
		t.Fatalf("back on the LAN: %v", id)
	}
}

func TestNetworkChanges(t *testing.T) {
	t.Parallel()
	s, _ := newSim(t, Options{Printers: []PrinterOptions{}})
	a, b := s.NetworkChanges(), s.NetworkChanges()
	s.ChangeNetwork()
	s.ChangeNetwork() // coalesced
	for _, ch := range []<-chan struct{}{a, b} {
		select {
		case <-ch:
		default:
			t.Fatal("no change signalled")
		}
		select {
		case <-ch:
			t.Fatal("two changes not coalesced")
		default:
		}
	}
	var none *Printer = &Printer{}
	if err := none.SetLAN(LANGone); err == nil {
		t.Fatal("SetLAN without LAN accepted")
	}
}
