package demo

import (
	"bytes"
	"context"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

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
	err := Run(ctx, Options{Out: &out, PortBase: 23000, Check: true, Ready: func(p []credstore.PublicRecord) {
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
	if strings.Count(out.String(), "check: GET") != 3 || !strings.Contains(out.String(), "mosquitto_sub -h 127.0.0.1") {
		t.Errorf("self-check output:\n%s", out.String())
	}
	after, _ := filepath.Glob(filepath.Join(os.TempDir(), "oeproxy-demo-*"))
	if len(after) != len(before) {
		t.Errorf("the demo left its temporary data directory: %v", after)
	}
}
