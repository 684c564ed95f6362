package oesim

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	paho "github.com/eclipse/paho.mqtt.golang"
)

func newPluginSim(t *testing.T, kind PrinterKind) (*Sim, *Connection, *Printer) {
	t.Helper()
	s, _ := newSim(t, Options{Printers: []PrinterOptions{{Name: "X1C", Kind: kind, Serial: "01S00C123456789", WebcamTransform: "flipv rotate=90"}}})
	p := s.Printers()[0]
	return s, s.Connect(p), p
}

// envelopeOf decodes a plugin command answer.
func envelopeOf(t *testing.T, body []byte) (status int, result json.RawMessage, errMsg string) {
	t.Helper()
	var e struct {
		Status int
		Result json.RawMessage
		Error  string
	}
	if err := json.Unmarshal(body, &e); err != nil {
		t.Fatalf("not a plugin envelope: %v: %s", err, body)
	}
	return e.Status, e.Result, e.Error
}

func TestPluginCommandAPIsThroughTheRelay(t *testing.T) {
	s, c, p := newPluginSim(t, KindBambu)
	client := s.HTTPClient()
	api := "/octoeverywhere-command-api/"

	resp, body := do(t, client, relayRequest(t, s, c, "GET", api+"status", nil, ""))
	st, res, _ := envelopeOf(t, body)
	if resp.StatusCode != 200 || st != 200 || !strings.Contains(string(res), `"PlatformVersion":"01.08.05.00-X1C"`) ||
		!strings.Contains(string(res), `"State":"idle"`) {
		t.Fatalf("status: %d %s", resp.StatusCode, body)
	}

	file := bytes.Repeat([]byte("G1 X10 Y10\n"), 200_000) // 2.2 MB: spooled by the relay
	resp, body = do(t, client, relayRequest(t, s, c, "PUT", api+"files/upload?path=gcode/benchy.3mf", bytes.NewReader(file), ""))
	if st, _, _ := envelopeOf(t, body); resp.StatusCode != 200 || st != 200 {
		t.Fatalf("upload: %d %s", resp.StatusCode, body)
	}
	sum := sha256.Sum256(file)
	if u, ok := p.Plugin().File("gcode/benchy.3mf"); !ok || u.SHA256 != hex.EncodeToString(sum[:]) || u.Size != int64(len(file)) {
		t.Fatalf("stored file: %+v %v", u, ok)
	}
	_, body = do(t, client, relayRequest(t, s, c, "GET", api+"files/download?path=gcode/benchy.3mf", nil, ""))
	if !bytes.Equal(body, file) {
		t.Fatalf("download: %d bytes, want the %d uploaded", len(body), len(file))
	}
	resp, body = do(t, client, relayRequest(t, s, c, "GET", api+"files/download?path=gcode/none.3mf", nil, ""))
	if st, _, _ := envelopeOf(t, body); resp.StatusCode != 404 || st != 404 {
		t.Fatalf("missing download: %d %s", resp.StatusCode, body)
	}
	_, body = do(t, client, relayRequest(t, s, c, "GET", api+"files/list", nil, ""))
	if !strings.Contains(string(body), `"Path":"gcode/benchy.3mf"`) {
		t.Fatalf("files/list: %s", body)
	}

	steps := []struct {
		cmd, body string
		want      int
		state     string
	}{
		{"pause", "", 786, "idle"},
		{"start", `{"Path":"gcode/none.3mf"}`, 404, "idle"},
		{"start", `{"Path":"gcode/benchy.3mf"}`, 200, "printing"},
		{"start", `{"Path":"gcode/benchy.3mf"}`, 786, "printing"},
		{"pause", "", 200, "paused"},
		{"resume", "", 200, "printing"},
		{"cancel", "", 200, "cancelled"},
		{"resume", "", 786, "cancelled"},
		{"frobnicate", "", 754, "cancelled"},
	}
	for _, st := range steps {
		_, body := do(t, client, relayRequest(t, s, c, "POST", api+st.cmd, strings.NewReader(st.body), ""))
		if got, _, _ := envelopeOf(t, body); got != st.want || p.Plugin().State() != st.state {
			t.Fatalf("%s %s: status %d state %q, want %d %q", st.cmd, st.body, got, p.Plugin().State(), st.want, st.state)
		}
	}
	if got := p.Plugin().Starts(); len(got) != 1 || got[0] != "gcode/benchy.3mf" {
		t.Fatalf("starts: %v", got)
	}

	resp, body = do(t, client, relayRequest(t, s, c, "GET", api+"webcam/snapshot", nil, ""))
	if resp.StatusCode != 200 || resp.Header.Get("x-oe-webcam-transform") != "flipv rotate=90" || !bytes.HasPrefix(body, []byte{0xff, 0xd8}) {
		t.Fatalf("snapshot: %d %q %d bytes", resp.StatusCode, resp.Header.Get("x-oe-webcam-transform"), len(body))
	}
	_, body = do(t, client, relayRequest(t, s, c, "GET", api+"webcam/list", nil, ""))
	if !strings.Contains(string(body), `"FlipV":true`) || !strings.Contains(string(body), `"Rotation":90`) {
		t.Fatalf("webcam/list: %s", body)
	}

	resp, _ = do(t, client, relayRequest(t, s, c, "GET", api+"status", nil, "none"))
	if resp.StatusCode != StatusBadCredentials {
		t.Fatalf("without credential: %d, want 606", resp.StatusCode)
	}
}

func TestPluginWebcamStreamIsCutAtTheLimit(t *testing.T) {
	s, c, _ := newPluginSim(t, KindBambu)
	lim := c.Limits()
	lim.MaxSingleWebcamStreamLength = 300 * time.Millisecond
	c.SetLimits(lim)
	resp, err := s.HTTPClient().Do(relayRequest(t, s, c, "GET", "/octoeverywhere-command-api/webcam/stream", nil, ""))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); !strings.Contains(ct, "boundary=oestreamboundary") || resp.Header.Get("x-oe-webcam-transform") == "" {
		t.Fatalf("stream headers: %v", resp.Header)
	}
	var buf bytes.Buffer
	_, _ = buf.ReadFrom(resp.Body) // ends when the relay cuts the stream
	if !bytes.Contains(buf.Bytes(), []byte("--oestreamboundary\r\nContent-Type: image/jpeg")) {
		t.Fatalf("no MJPEG part in %d bytes", buf.Len())
	}
	reqs := c.Requests()
	if !reqs[len(reqs)-1].Cut {
		t.Fatal("the relay did not record the stream as cut")
	}
}

// mqttClient connects paho to the relay's MQTT proxy through coder/websocket (subprotocol mqtt, binary frames).
func mqttClient(t *testing.T, s *Sim, c *Connection, auth string, clientID string) (paho.Client, paho.Token) {
	t.Helper()
	cr := c.Credentials()
	hc := s.HTTPClient()
	opts := paho.NewClientOptions().AddBroker("tcp://" + cr.Host + ":443").SetClientID(clientID).
		SetAutoReconnect(false).SetConnectRetry(false).SetConnectTimeout(5 * time.Second)
	opts.SetCustomOpenConnectionFn(func(*url.URL, paho.ClientOptions) (net.Conn, error) {
		h := http.Header{}
		switch auth {
		case "header":
			h.Set("Authorization", "Bearer "+cr.BearerToken)
		}
		u := "wss://" + cr.Host + mqttProxyPath
		if auth == "query" {
			u += "?oe_api_key=" + url.QueryEscape(cr.BearerToken)
		}
		ws, _, err := websocket.Dial(context.Background(), u, &websocket.DialOptions{HTTPClient: hc, HTTPHeader: h, Subprotocols: []string{"mqtt"}})
		if err != nil {
			return nil, err
		}
		if ws.Subprotocol() != "mqtt" {
			return nil, errors.New("subprotocol " + ws.Subprotocol())
		}
		return websocket.NetConn(context.Background(), ws, websocket.MessageBinary), nil
	})
	var lost = make(chan error, 1)
	opts.SetConnectionLostHandler(func(_ paho.Client, err error) { lost <- err })
	cl := paho.NewClient(opts)
	t.Cleanup(func() { cl.Disconnect(0) })
	return cl, cl.Connect()
}

func TestMQTTProxySubscribePushall(t *testing.T) {
	s, c, p := newPluginSim(t, KindBambu)
	topic := "device/" + p.Plugin().Serial() + "/report"
	for _, auth := range []string{"header", "query"} {
		t.Run(auth, func(t *testing.T) {
			cl, tok := mqttClient(t, s, c, auth, "ha-"+auth)
			if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
				t.Fatalf("connect: %v", tok.Error())
			}
			got := make(chan []byte, 4)
			if tk := cl.Subscribe(topic, 0, func(_ paho.Client, m paho.Message) { got <- m.Payload() }); !tk.WaitTimeout(5*time.Second) || tk.Error() != nil {
				t.Fatalf("subscribe: %v", tk.Error())
			}
			if tk := cl.Publish("device/"+p.Plugin().Serial()+"/request", 0, false, `{"pushing":{"sequence_id":"0","command":"pushall"}}`); !tk.WaitTimeout(5*time.Second) || tk.Error() != nil {
				t.Fatalf("publish: %v", tk.Error())
			}
			select {
			case b := <-got:
				var r struct {
					Print struct {
						GcodeState string `json:"gcode_state"`
					}
				}
				if err := json.Unmarshal(b, &r); err != nil || r.Print.GcodeState != "IDLE" {
					t.Fatalf("report %s: %v", b, err)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("no report after pushall")
			}
		})
	}
}

func TestMQTTProxyFailures(t *testing.T) {
	s, c, p := newPluginSim(t, KindBambu)

	// A handshake the relay refuses never reaches MQTT.
	_, tok := mqttClient(t, s, c, "none", "no-cred")
	if tok.WaitTimeout(10 * time.Second); tok.Error() == nil || !strings.Contains(tok.Error().Error(), "606") {
		t.Fatalf("connect without credential: %v, want the 606 handshake refusal", tok.Error())
	}

	// The plugin's printer connection fails: open WebSockets close with 4000+code.
	ws, _, err := websocket.Dial(context.Background(), "wss://"+c.Credentials().Host+mqttProxyPath, &websocket.DialOptions{
		HTTPClient: s.HTTPClient(), Subprotocols: []string{"mqtt"},
		HTTPHeader: http.Header{"Authorization": {"Bearer " + c.Credentials().BearerToken}},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer ws.CloseNow()
	p.Plugin().SetMQTTFailure(StatusPrinterOffline)
	_, _, err = ws.Read(context.Background())
	if got := websocket.CloseStatus(err); got != 4601 {
		t.Fatalf("close status %d (%v), want 4601", got, err)
	}
}

func TestElegooSDCPAndNoMQTT(t *testing.T) {
	s, c, _ := newPluginSim(t, KindElegoo)
	hdr := http.Header{"Authorization": {"Bearer " + c.Credentials().BearerToken}}
	ws, _, err := websocket.Dial(context.Background(), "wss://"+c.Credentials().Host+"/websocket", &websocket.DialOptions{HTTPClient: s.HTTPClient(), HTTPHeader: hdr})
	if err != nil {
		t.Fatal(err)
	}
	defer ws.CloseNow()
	ctx := context.Background()
	if err := ws.Write(ctx, websocket.MessageText, []byte("ping")); err != nil {
		t.Fatal(err)
	}
	if _, b, err := ws.Read(ctx); err != nil || string(b) != "pong" {
		t.Fatalf("ping: %q %v", b, err)
	}
	_, body := do(t, s.HTTPClient(), relayRequest(t, s, c, "GET", "/octoeverywhere-command-api/status", nil, ""))
	if !strings.Contains(string(body), "Centauri Carbon") {
		t.Fatalf("status: %s", body)
	}
	_, body = do(t, s.HTTPClient(), relayRequest(t, s, c, "GET", "/", nil, ""))
	if !strings.Contains(string(body), "ELEGOO") {
		t.Fatalf("the printer's page: %s", body)
	}
	_, body = do(t, s.HTTPClient(), relayRequest(t, s, c, "GET", "/octoeverywhere-command-api/proxy/mqtt", nil, ""))
	if st, _, _ := envelopeOf(t, body); st != 788 {
		t.Fatalf("MQTT proxy on a CC1: %s, want 788", body)
	}
}
