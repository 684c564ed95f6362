package demo

import (
	"bytes"
	"context"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/oeproxy/oeproxy/credstore"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestDemoLinksAndServesBothPrinters(t *testing.T) {
	before, _ := filepath.Glob(filepath.Join(os.TempDir(), "oeproxy-demo-*"))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var out bytes.Buffer
	var served []credstore.PublicRecord
	err := Run(ctx, Options{Out: &out, PortBase: 23000, Check: true, ExitAfter: time.Minute, Ready: func(p []credstore.PublicRecord) {
		served = p
		for _, r := range p {
			resp, err := http.Get(r.LocalURL + "/")
			if err != nil {
				t.Errorf("%s: %v", r.Name, err)
				continue
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				t.Errorf("%s page: %s", r.Name, resp.Status)
			}
		}
		cancel()
	}})
	if err != nil {
		t.Fatal(err)
	}
	if len(served) != 3 {
		t.Fatalf("demo served %d printers, want 3 (OctoPrint, Moonraker, Bambu):\n%s", len(served), out.String())
	}
	// The summary names everything a user needs to try the CLI, and does not ask for Ctrl-C when the demo
	// stops by itself.
	for _, want := range []string{"Admin page (one-time login):  http://127.0.0.1:", "/login?token=", " status\n", " list\n",
		"stops by itself after 1m0s"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("summary lacks %q:\n%s", want, out.String())
		}
	}
	if strings.Contains(out.String(), "Press Ctrl-C") {
		t.Errorf("summary asks for Ctrl-C although --exit-after is set:\n%s", out.String())
	}
	for _, want := range []string{"now lan (straight to http://127.0.0.2:", "now relay (its LAN address does not answer from here)"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("the demo does not show %q:\n%s", want, out.String())
		}
	}
	if strings.Count(out.String(), "check: GET") != 3 || !strings.Contains(out.String(), "mosquitto_sub -h 127.0.0.1") {
		t.Errorf("self-check output:\n%s", out.String())
	}
	after, _ := filepath.Glob(filepath.Join(os.TempDir(), "oeproxy-demo-*"))
	if len(after) != len(before) {
		t.Errorf("the demo left its temporary data directory: %v", after)
	}
}
