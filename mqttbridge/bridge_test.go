package mqttbridge_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"strings"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/eclipse/paho.mqtt.golang/packets"
	"go.uber.org/goleak"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/oeproxy/oeproxy/internal/oenet"
	"github.com/oeproxy/oeproxy/internal/testutil"
	"github.com/oeproxy/oeproxy/mqttbridge"
	"github.com/oeproxy/oeproxy/oesim"
	"github.com/oeproxy/oeproxy/proxy"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

type env struct {
	sim    *oesim.Sim
	conn   *oesim.Connection
	plugin interface {
		Serial() string
		SetMQTTFailure(int)
	}
	printer *oesim.Printer
	addr    string
	bridge  *mqttbridge.Bridge
	logs    *observer.ObservedLogs
}

// start runs oesim with a Bambu printer, a proxy.Handler for it, and a bridge on a loopback port.
func start(t *testing.T) *env {
	t.Helper()
	sim, err := oesim.Start(context.Background(), oesim.Options{Printers: []oesim.PrinterOptions{{Name: "X1C", Kind: oesim.KindBambu, Serial: "01S00C987654321"}}})
	if err != nil {
		t.Fatal(err)
	}
	p := sim.Printers()[0]
	c := sim.Connect(p)
	cr := c.Credentials()
	relayURL, _ := url.Parse(cr.URL)
	tr := oenet.Options{ConnectTo: sim.Addr, RootCAs: sim.RootCAs}.Transport()
	core, logs := observer.New(zap.InfoLevel)
	h, err := proxy.New(proxy.Printer{Name: "x1c", RelayURL: relayURL, BasicUser: cr.BasicUser, BasicPassword: cr.BasicPassword}, proxy.Options{Transport: tr})
	if err != nil {
		t.Fatal(err)
	}
	b, err := mqttbridge.New(mqttbridge.Options{Dial: h.DialMQTT, Printer: "x1c", Logger: zap.New(core)})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- b.Serve(ln) }()
	t.Cleanup(func() {
		_ = b.Close()
		if err := <-served; err != nil {
			t.Errorf("Serve: %v", err)
		}
		h.Close()
		_ = sim.Close()
		tr.CloseIdleConnections()
		for _, e := range logs.All() {
			line := fmt.Sprint(e.Message, e.ContextMap())
			for _, s := range []string{cr.BasicUser, cr.BasicPassword, cr.BearerToken} {
				if strings.Contains(line, s) {
					t.Errorf("a secret in the log: %s", line)
				}
			}
		}
	})
	return &env{sim: sim, conn: c, plugin: p.Plugin(), printer: p, addr: ln.Addr().String(), bridge: b, logs: logs}
}

func (e *env) client(t *testing.T, id string, lost chan<- error) (paho.Client, error) {
	t.Helper()
	opts := paho.NewClientOptions().AddBroker("tcp://" + e.addr).SetClientID(id).SetAutoReconnect(false).
		SetConnectRetry(false).SetConnectTimeout(10 * time.Second).SetKeepAlive(30 * time.Second).SetProtocolVersion(4)
	if lost != nil {
		opts.SetConnectionLostHandler(func(_ paho.Client, err error) { lost <- err })
	}
	cl := paho.NewClient(opts)
	tok := cl.Connect()
	tok.WaitTimeout(15 * time.Second)
	if tok.Error() != nil {
		return nil, tok.Error()
	}
	t.Cleanup(func() { cl.Disconnect(0) })
	return cl, nil
}

func wait(t *testing.T, tok paho.Token, what string) {
	t.Helper()
	if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("%s: %v", what, tok.Error())
	}
}

func TestSubscribeReportAndPushallWithSeveralClients(t *testing.T) {
	e := start(t)
	report := "device/" + e.plugin.Serial() + "/report"
	request := "device/" + e.plugin.Serial() + "/request"
	var got []chan []byte
	var clients []paho.Client
	for _, id := range []string{"homeassistant", "mosquitto_sub", "farm"} {
		cl, err := e.client(t, id, nil)
		if err != nil {
			t.Fatalf("%s: connect: %v", id, err)
		}
		ch := make(chan []byte, 8)
		wait(t, cl.Subscribe(report, 0, func(_ paho.Client, m paho.Message) { ch <- m.Payload() }), id+" subscribe")
		got, clients = append(got, ch), append(clients, cl)
	}
	wait(t, clients[0].Publish(request, 0, false, `{"pushing":{"sequence_id":"1","command":"pushall"}}`), "publish pushall")
	for i, ch := range got {
		select {
		case b := <-ch:
			var r struct {
				Print struct {
					Command    string `json:"command"`
					GcodeState string `json:"gcode_state"`
				} `json:"print"`
			}
			if err := json.Unmarshal(b, &r); err != nil || r.Print.Command != "push_status" || r.Print.GcodeState != "IDLE" {
				t.Fatalf("client %d report %s: %v", i, b, err)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("client %d got no report after pushall", i)
		}
	}
	// Each client has its own WebSocket to the relay, with the credential on its handshake.
	n := 0
	for _, r := range e.conn.Requests() {
		if r.WebSocket && r.Path == proxy.MQTTProxyPath {
			n++
			if r.Status != 101 || !strings.HasPrefix(r.Header.Get("Authorization"), "Basic ") {
				t.Fatalf("handshake: status %d, Authorization set %v", r.Status, r.Header.Get("Authorization") != "")
			}
		}
	}
	if n != 3 {
		t.Fatalf("%d MQTT proxy WebSockets, want one per client (3)", n)
	}
	if e.bridge.Clients() != 3 {
		t.Fatalf("bridge counts %d clients", e.bridge.Clients())
	}
}

func TestHandshakeRefusalBecomesConnack(t *testing.T) {
	for _, tc := range []struct {
		name string
		set  func(*env)
		code int64
		want error
	}{
		{"printer offline", func(e *env) { e.printer.SetOnline(false) }, 601, packets.ErrorRefusedServerUnavailable},
		{"revoked", func(e *env) { e.conn.Revoke() }, 604, packets.ErrorRefusedNotAuthorised},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := start(t)
			tc.set(e)
			_, err := e.client(t, "ha", nil)
			if !errors.Is(err, tc.want) {
				t.Fatalf("connect: %v, want %v", err, tc.want)
			}
			testutil.WaitFor(t, "a log line naming the OE code", func() bool {
				for _, l := range e.logs.FilterMessageSnippet("refused").All() {
					if code, _ := l.ContextMap()["code"].(int64); code == tc.code {
						return true
					}
				}
				return false
			})
		})
	}
}

func TestRelayCutClosesTheClient(t *testing.T) {
	for _, tc := range []struct {
		name string
		cut  func(*env)
		log  string
	}{
		{"plugin lost the printer", func(e *env) { e.plugin.SetMQTTFailure(601) }, "OctoEverywhere 601"},
		{"plugin disconnected", func(e *env) { e.conn.DropWebSockets() }, "status 1001"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := start(t)
			lost := make(chan error, 1)
			if _, err := e.client(t, "ha", lost); err != nil {
				t.Fatal(err)
			}
			tc.cut(e)
			select {
			case <-lost:
			case <-time.After(10 * time.Second):
				t.Fatal("the MQTT client did not see its connection close")
			}
			testutil.WaitFor(t, "a log line saying why: "+tc.log, func() bool {
				for _, l := range e.logs.FilterMessageSnippet("ended by the relay").All() {
					if r, _ := l.ContextMap()["reason"].(string); strings.Contains(r, tc.log) {
						return true
					}
				}
				return false
			})
		})
	}
}

func TestCloseEndsConnectedClients(t *testing.T) {
	e := start(t)
	lost := make(chan error, 1)
	if _, err := e.client(t, "ha", lost); err != nil {
		t.Fatal(err)
	}
	if err := e.bridge.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-lost:
	case <-time.After(10 * time.Second):
		t.Fatal("Close left the MQTT client connected")
	}
	if n := e.bridge.Clients(); n != 0 {
		t.Fatalf("%d clients after Close", n)
	}
	if c, err := net.DialTimeout("tcp", e.addr, time.Second); err == nil {
		c.Close()
		t.Fatal("the port still accepts after Close")
	}
}

func TestMQTT5IsRefused(t *testing.T) {
	e := start(t)
	c, err := net.DialTimeout("tcp", e.addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	// CONNECT, protocol level 5, empty properties, client id "t".
	if _, err := c.Write([]byte{0x10, 14, 0, 4, 'M', 'Q', 'T', 'T', 5, 0x02, 0, 30, 0, 0, 1, 't'}); err != nil {
		t.Fatal(err)
	}
	ack := make([]byte, 4)
	if _, err := io.ReadFull(c, ack); err != nil || ack[0] != 0x20 || ack[3] != 0x01 {
		t.Fatalf("CONNACK %x %v, want unacceptable protocol version", ack, err)
	}
	for _, r := range e.conn.Requests() {
		if r.Path == proxy.MQTTProxyPath {
			t.Fatal("an MQTT 5 client made the bridge dial the relay")
		}
	}
}
