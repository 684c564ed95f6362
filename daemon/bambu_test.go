package daemon

import (
	"bytes"
	"context"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/oeproxy/oeproxy/control"
	"github.com/oeproxy/oeproxy/oesim"
	"github.com/oeproxy/oeproxy/portalflow"
)

// mqttConnect is an MQTT 3.1.1 CONNECT of client id "t", clean session, keep-alive 30 s.
var mqttConnect = []byte{0x10, 13, 0, 4, 'M', 'Q', 'T', 'T', 4, 0x02, 0, 30, 0, 1, 't'}

func TestConnectBambuGetsFrontAndMQTT(t *testing.T) {
	e := newTestEnv(t, oesim.Options{Printers: []oesim.PrinterOptions{{Name: "X1C", Kind: oesim.KindBambu}}})
	d, _ := runDaemon(t, e, newClock())
	c := e.Sim.Connect(nil)
	cr := c.Credentials()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	const key = "0123456789ABCDEF0123456789ABCDEF"
	rec, err := d.Control().Add(context.Background(), control.AddRequest{Name: "x1c", Port: port, FrontAPIKey: key, Completion: portalflow.Completion{
		ID: cr.ID, URL: cr.URL, AppAPIToken: cr.AppAPIToken, PrinterName: "X1C",
		BasicUser: cr.BasicUser, BasicPassword: cr.BasicPassword, BearerToken: cr.BearerToken,
	}})
	if err != nil {
		t.Fatal(err)
	}
	if rec.Platform != "bambu" || !rec.HasFrontAPIKey || rec.MQTTPort == 0 {
		t.Fatalf("record: platform %q front %v mqtt %d", rec.Platform, rec.HasFrontAPIKey, rec.MQTTPort)
	}

	req, _ := http.NewRequest("GET", rec.LocalURL+"/api/version", nil)
	req.Header.Set("X-Api-Key", key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !bytes.Contains(body, []byte(`"text":"OctoPrint`)) {
		t.Fatalf("front: %d %s", resp.StatusCode, body)
	}

	mqttAddr := net.JoinHostPort("127.0.0.1", strconv.Itoa(rec.MQTTPort))
	conn, err := net.DialTimeout("tcp", mqttAddr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(15 * time.Second))
	if _, err := conn.Write(mqttConnect); err != nil {
		t.Fatal(err)
	}
	ack := make([]byte, 4)
	if _, err := io.ReadFull(conn, ack); err != nil || !bytes.Equal(ack, []byte{0x20, 2, 0, 0}) {
		t.Fatalf("CONNACK %x %v, want accepted", ack, err)
	}

	off, err := d.Control().SetMQTT(context.Background(), "x1c", control.MQTTRequest{})
	if err != nil || off.MQTTPort != 0 {
		t.Fatalf("disable: %+v %v", off, err)
	}
	if c, err := net.DialTimeout("tcp", mqttAddr, time.Second); err == nil {
		c.Close()
		t.Fatal("the MQTT port still accepts after mqtt disable")
	}

	// mqtt enable --tls: the same port with a certificate oeproxy made (clients that insist on TLS).
	on, err := d.Control().SetMQTT(context.Background(), "x1c", control.MQTTRequest{Enable: true, Port: rec.MQTTPort, TLS: true})
	if err != nil || on.MQTTPort != rec.MQTTPort || !on.MQTTTLS {
		t.Fatalf("enable --tls: %+v %v", on, err)
	}
	tc, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", mqttAddr, &tls.Config{InsecureSkipVerify: true}) //nolint:gosec // the bridge's certificate is self-signed by design
	if err != nil {
		t.Fatal(err)
	}
	defer tc.Close()
	if cn := tc.ConnectionState().PeerCertificates[0].Subject.CommonName; cn != "oeproxy MQTT bridge" {
		t.Fatalf("certificate %q", cn)
	}
	_ = tc.SetDeadline(time.Now().Add(15 * time.Second))
	if _, err := tc.Write(mqttConnect); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(tc, ack); err != nil || !bytes.Equal(ack, []byte{0x20, 2, 0, 0}) {
		t.Fatalf("CONNACK over TLS %x %v", ack, err)
	}
}

func TestConnectElegooGetsItsFixedPorts(t *testing.T) {
	e := newTestEnv(t, oesim.Options{Printers: []oesim.PrinterOptions{{Name: "Centauri Carbon", Kind: oesim.KindElegoo}}})
	d, _ := runDaemon(t, e, newClock())
	c := e.Sim.Connect(nil)
	cr := c.Credentials()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	rec, err := d.Control().Add(context.Background(), control.AddRequest{Name: "cc", Port: port, Completion: portalflow.Completion{
		ID: cr.ID, URL: cr.URL, AppAPIToken: cr.AppAPIToken, PrinterName: "Centauri Carbon",
		BasicUser: cr.BasicUser, BasicPassword: cr.BasicPassword, BearerToken: cr.BearerToken,
	}})
	if err != nil {
		t.Fatal(err)
	}
	if rec.Platform != "elegoo" || !rec.HasFrontAPIKey || rec.MQTTPort != 0 {
		t.Fatalf("record: platform %q front %v mqtt %d", rec.Platform, rec.HasFrontAPIKey, rec.MQTTPort)
	}
	if rec.LoopbackAddress == "" {
		t.Skip("no loopback address other than 127.0.0.1 can be bound here (macOS without an lo0 alias)")
	}
	// An SDCP client as OrcaSlicer's ElegooLink opens it: ws://<host>:3030/websocket, whatever port was typed.
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	ws, _, err := websocket.Dial(ctx, "ws://"+rec.LoopbackAddress+":3030/websocket", nil)
	if err != nil {
		t.Fatalf("SDCP WebSocket on %s:3030: %v", rec.LoopbackAddress, err)
	}
	defer ws.CloseNow()
	if err := ws.Write(ctx, websocket.MessageText, []byte("ping")); err != nil {
		t.Fatal(err)
	}
	if _, b, err := ws.Read(ctx); err != nil || string(b) != "pong" {
		t.Fatalf("SDCP ping: %q %v", b, err)
	}
	req := `{"Id":"","Data":{"Cmd":0,"Data":{},"RequestID":"r1","MainboardID":"","TimeStamp":0,"From":1},"Topic":"sdcp/request/"}`
	if err := ws.Write(ctx, websocket.MessageText, []byte(req)); err != nil {
		t.Fatal(err)
	}
	if _, b, err := ws.Read(ctx); err != nil || !bytes.Contains(b, []byte(`"RequestID":"r1"`)) || !bytes.Contains(b, []byte(`sdcp/response/`)) {
		t.Fatalf("SDCP status request: %s %v", b, err)
	}
	_ = ws.Close(websocket.StatusNormalClosure, "")
	if reqs := c.Requests(); len(reqs) == 0 || reqs[len(reqs)-1].Path != "/websocket" || reqs[len(reqs)-1].Header.Get("Authorization") == "" {
		t.Fatal("the SDCP WebSocket did not go through the relay with the credential")
	}
}
