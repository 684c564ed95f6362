package oesim

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"mime/multipart"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// TestBuiltinPrinters runs the default printers of package printer behind the relay: the portal's OctoPrint key
// works, an upload arrives byte-exact with its Location corrected, the webcam is cut at the limit, and Moonraker's
// API, frontend and WebSocket are reached by their routes.
func TestBuiltinPrinters(t *testing.T) {
	s, err := Start(context.Background(), Options{
		AutoApprove: true,
		Limits:      Limits{MaxSingleWebcamStreamLength: 600 * time.Millisecond},
		Printers: []PrinterOptions{
			{Name: "Prusa MK4", Kind: KindOctoPrint, APIKey: "OCTOKEY0123456789", FrameInterval: 50 * time.Millisecond},
			{Name: "Voron 2.4", Kind: KindMoonraker, FrameInterval: 50 * time.Millisecond},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	client := s.HTTPClient()
	octo, voron := s.Printers()[0], s.Printers()[1]

	resp, _ := portalGet(t, s, "appid=devtest&octoPrintApiKeyAppName=oeproxy&printerId="+octo.ID)
	got := completion(t, resp, "https://")
	c := s.Connection(got.Get("id"))
	key := got.Get("octoPrintApiKey")
	if c == nil || key != "OCTOKEY0123456789" {
		t.Fatalf("portal: connection %v key %q", c, key)
	}

	req := relayRequest(t, s, c, http.MethodGet, "/api/version", nil, "basic")
	req.Header.Set("X-Api-Key", key)
	if r, body := do(t, client, req); r.StatusCode != 200 || !strings.Contains(string(body), "server") {
		t.Errorf("/api/version: %d %s", r.StatusCode, body)
	}
	if r, _ := do(t, client, relayRequest(t, s, c, http.MethodGet, "/api/version", nil, "basic")); r.StatusCode == 200 {
		t.Error("/api/version without the printer's key passed")
	}

	t.Run("upload", func(t *testing.T) {
		payload := bytes.Repeat([]byte("G1 X10 Y10\n"), 200_000)
		var body bytes.Buffer
		mw := multipart.NewWriter(&body)
		fw, _ := mw.CreateFormFile("file", "benchy.gcode")
		fw.Write(payload)
		mw.WriteField("print", "false")
		mw.Close()
		req := relayRequest(t, s, c, http.MethodPost, "/api/files/local", bytes.NewReader(body.Bytes()), "basic")
		req.Header.Set("Content-Type", mw.FormDataContentType())
		req.Header.Set("X-Api-Key", key)
		r, rb := do(t, client, req)
		if r.StatusCode != 201 || !strings.HasPrefix(r.Header.Get("Location"), c.Credentials().URL+"/") {
			t.Fatalf("upload: %d Location %q %s", r.StatusCode, r.Header.Get("Location"), rb)
		}
		sum := sha256.Sum256(payload)
		ups := octo.OctoPrint().Uploads()
		if len(ups) != 1 || ups[0].SHA256 != hex.EncodeToString(sum[:]) || ups[0].ContentLength != int64(body.Len()) {
			t.Errorf("uploads %+v", ups)
		}
	})
	t.Run("webcam", func(t *testing.T) {
		r, err := client.Do(relayRequest(t, s, c, http.MethodGet, "/webcam/?action=stream", nil, "basic"))
		if err != nil {
			t.Fatal(err)
		}
		data, err := io.ReadAll(r.Body)
		r.Body.Close()
		if err != nil || !isWebcamStream(r.Header.Get("Content-Type")) || bytes.Count(data, []byte{0xFF, 0xD8}) < 2 {
			t.Errorf("webcam: %v %q, %d bytes, %d frames", err, r.Header.Get("Content-Type"), len(data), bytes.Count(data, []byte{0xFF, 0xD8}))
		}
	})

	mc := s.Connect(voron)
	t.Run("moonraker", func(t *testing.T) {
		if r, body := do(t, client, relayRequest(t, s, mc, http.MethodGet, "/server/info", nil, "bearer")); r.StatusCode != 200 || !strings.Contains(string(body), "result") {
			t.Errorf("/server/info: %d %s", r.StatusCode, body)
		}
		if r, body := do(t, client, relayRequest(t, s, mc, http.MethodGet, "/", nil, "bearer")); r.StatusCode != 200 || !strings.Contains(string(body), "<html") {
			t.Errorf("frontend /: %d %.100s", r.StatusCode, body)
		}
		cr := mc.Credentials()
		ws, _, err := websocket.Dial(context.Background(), "wss://"+cr.Host+"/websocket", &websocket.DialOptions{
			HTTPClient: s.HTTPClient(), HTTPHeader: http.Header{"Authorization": {"Bearer " + cr.BearerToken}},
		})
		if err != nil {
			t.Fatal(err)
		}
		defer ws.CloseNow()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := ws.Write(ctx, websocket.MessageText, []byte(`{"jsonrpc":"2.0","method":"server.info","id":7}`)); err != nil {
			t.Fatal(err)
		}
		for {
			_, data, err := ws.Read(ctx)
			if err != nil {
				t.Fatalf("no JSON-RPC answer: %v", err)
			}
			var m map[string]any
			if json.Unmarshal(data, &m) == nil && m["id"] == float64(7) {
				if m["result"] == nil {
					t.Errorf("answer %s", data)
				}
				break
			}
		}
		ws.Close(websocket.StatusNormalClosure, "")
	})
}
