package daemon

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"mime/multipart"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/oeproxy/oeproxy/config"
	"github.com/oeproxy/oeproxy/control"
	"github.com/oeproxy/oeproxy/health"
	"github.com/oeproxy/oeproxy/oesim"
	"github.com/oeproxy/oeproxy/proxy"
)

// TestSpooledUploads: with upload.answer_when_stored the daemon answers a slicer's upload 202 and delivers it;
// an upload a previous run stored and never delivered is reported at start; both are counted in /metrics.
func TestSpooledUploads(t *testing.T) {
	e := newTestEnv(t, oesim.Options{})
	mk4 := e.Sim.Printers()[0]
	addServed(t, e, "mk4", mk4)
	spool := filepath.Join(t.TempDir(), "uploads")
	// What a run that stopped mid-delivery leaves: the body and its record.
	if err := os.MkdirAll(spool, 0o700); err != nil {
		t.Fatal(err)
	}
	old := proxy.UploadRecord{ID: "old-1", Printer: "mk4", Path: "/api/files/local", File: "old.gcode", Size: 3,
		State: proxy.UploadStored, Stored: time.Now().Add(-time.Hour)}
	b, _ := json.Marshal(old)
	_ = os.WriteFile(filepath.Join(spool, "old-1.json"), b, 0o600)
	_ = os.WriteFile(filepath.Join(spool, "old-1.body"), []byte("G28"), 0o600)

	d, logs := serviceDaemon(t, e, func(c *config.Config) {
		c.Upload.AnswerWhenStored, c.Upload.SpoolDir = true, spool
	}, nil)
	waitState(t, d.healthOf("mk4"), health.StateOnline)

	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	_ = mw.WriteField("print", "false")
	fw, _ := mw.CreateFormFile("file", "new.gcode")
	_, _ = fw.Write(bytes.Repeat([]byte("G1 X1\n"), 10000))
	_ = mw.Close()
	req, _ := http.NewRequest(http.MethodPost, "http://"+d.PrinterAddr("mk4")+"/api/files/local", &body)
	req.Header.Set("Content-Type", mw.FormDataContentType())
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	answer, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("upload: %d %s", resp.StatusCode, answer)
	}
	waitFor(t, "the upload delivered", func() bool {
		rs := d.Uploads()
		return len(rs) == 2 && rs[1].State == proxy.UploadDelivered
	})
	rs := d.Uploads()
	if rs[0].State != proxy.UploadInterrupted || rs[0].File != "old.gcode" || rs[0].Kept == "" {
		t.Errorf("old upload %+v, want interrupted and kept", rs[0])
	}
	if ups := mk4.OctoPrint().Uploads(); len(ups) != 1 || ups[0].Filename != "new.gcode" {
		t.Errorf("printer uploads %+v", ups)
	}
	metrics := newBrowser(t, d).do(http.MethodGet, "/metrics", nil, nil).body
	for outcome, want := range map[string]float64{"delivered": 1, "interrupted": 1} {
		if v, _ := series(metrics, "oeproxy_spooled_uploads_total", map[string]string{"printer": "mk4", "outcome": outcome}); v != want {
			t.Errorf("oeproxy_spooled_uploads_total{outcome=%q} = %v, want %v", outcome, v, want)
		}
	}
	page := newBrowser(t, d).do(http.MethodGet, "/", nil, nil).body
	for _, want := range []string{`id="uploads"`, "new.gcode", "delivered</span> (201)", "old.gcode", "interrupted", "send it again"} {
		if !strings.Contains(page, want) {
			t.Errorf("admin page lacks %q", want)
		}
	}
	// oeproxy status, over the control socket as the CLI asks it.
	cl, err := control.Dial(context.Background(), d.SocketPath())
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	st, err := cl.Status(context.Background(), "mk4")
	if err != nil || len(st) != 1 {
		t.Fatalf("status: %v %v", st, err)
	}
	if us := st[0].Uploads; len(us) != 2 || us[0].State != proxy.UploadInterrupted || us[1].State != proxy.UploadDelivered || us[1].Status != 201 {
		t.Errorf("status uploads %+v, want the interrupted one and the delivered one", us)
	}
	if !strings.Contains(logText(logs), "upload.answer_when_stored is on") {
		t.Error("no warning that uploads are answered before the printer has them")
	}
}
