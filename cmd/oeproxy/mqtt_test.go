package main

import (
	"context"
	"regexp"
	"strings"
	"testing"

	"github.com/oeproxy/oeproxy/oesim"
)

// Without a daemon, connect asks the plugin for the platform itself: a Bambu printer gets the front's key (shown
// once, never listed) and an MQTT port; --platform overrides; mqtt enable/disable change the port.
func TestConnectBambuWithoutDaemon(t *testing.T) {
	e := newEnv(t, oesim.Options{Printers: []oesim.PrinterOptions{{Name: "X1C", Kind: oesim.KindBambu}, {Name: "MK4", Kind: oesim.KindOctoPrint}}})
	ps := e.sim.Printers()
	bambu := e.sim.Connect(ps[0]).Credentials()
	out := e.mustRun(completionURL(bambu, "X1C", nil)+"\n", "connect", "--completion-url", "-", "--port", "0")
	key := regexp.MustCompile(`(?m)^\s+([0-9A-F]{32})\s*$`).FindStringSubmatch(out)
	if !strings.Contains(out, "Platform: bambu") || key == nil || !strings.Contains(out, "mqtt://127.0.0.1:") {
		t.Fatalf("connect output:\n%s", out)
	}
	l := e.list()
	if len(l) != 1 || l[0].Platform != "bambu" || !l[0].HasFrontAPIKey || l[0].MQTTPort == 0 {
		t.Fatalf("listed: %+v", l)
	}
	if listed := e.mustRun("", "list", "--json"); strings.Contains(listed, key[1]) || !strings.Contains(listed, `"platform": "bambu"`) {
		t.Fatalf("list --json: %s", listed)
	}

	// --platform says it for a printer whose plugin reports something else.
	mk4 := e.sim.Connect(ps[1]).Credentials()
	out = e.mustRun(completionURL(mk4, "MK4", nil)+"\n", "connect", "--completion-url", "-", "--port", "0", "--platform", "elegoo", "--name", "forced")
	if !strings.Contains(out, "Platform: elegoo") || !strings.Contains(out, "Slicers: add an OctoPrint host") {
		t.Fatalf("--platform elegoo:\n%s", out)
	}
	if code, _, errOut := e.run(context.Background(), "", "connect", "--completion-url", "x", "--platform", "makerbot"); code != 2 || !strings.Contains(errOut, "--platform") {
		t.Fatalf("unknown platform: exit %d %q", code, errOut)
	}

	out = e.mustRun("", "mqtt", "disable", l[0].Name)
	if !strings.Contains(out, "no MQTT port") {
		t.Fatalf("mqtt disable: %s", out)
	}
	out = e.mustRun("", "mqtt", "enable", l[0].Name, "--tls")
	if !strings.Contains(out, "mqtts://127.0.0.1:") {
		t.Fatalf("mqtt enable --tls: %s", out)
	}
	e.assertNoSecrets(out)
}
