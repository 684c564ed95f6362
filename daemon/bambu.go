package daemon

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/coder/websocket"
	"go.uber.org/zap"

	"github.com/oeproxy/oeproxy/control"
	"github.com/oeproxy/oeproxy/credstore"
	"github.com/oeproxy/oeproxy/front"
	"github.com/oeproxy/oeproxy/mqttbridge"
	"github.com/oeproxy/oeproxy/proxy"
)

// This file holds what printers without an HTTP API of their own need from the daemon (issue 15): the platform
// decided at connect, the OctoPrint front's key, and each printer's MQTT bridge.

// MQTTPortBase is the first port handed to a printer's MQTT bridge: MQTT's own 1883, then up.
const MQTTPortBase = 1883

// preparePlatform decides the new record's platform (the request's, else what the plugin reports), gives a
// printer that needs the OctoPrint front its key, and a Bambu printer an MQTT port.
func (p *Printers) preparePlatform(ctx context.Context, rec *credstore.Record, req control.AddRequest, existing []credstore.Record) error {
	platform := strings.ToLower(strings.TrimSpace(req.Platform))
	if platform != "" && !slices.Contains(credstore.Platforms, platform) {
		return fmt.Errorf("%w: platform %q is not one of %s", control.ErrInvalid, req.Platform, strings.Join(credstore.Platforms, ", "))
	}
	if platform == "" && p.DetectPlatform != nil {
		dctx, cancel := context.WithTimeout(ctx, 15*time.Second)
		detected, err := p.DetectPlatform(dctx, *rec)
		cancel()
		if err != nil {
			// Not fatal: the printer works as a plain relay; connect --platform can say it later.
			detected = ""
		}
		platform = detected
	}
	rec.Platform = platform
	if front.NeedsFront(platform) {
		rec.FrontAPIKey = req.FrontAPIKey
		if rec.FrontAPIKey == "" {
			k, err := front.NewAPIKey()
			if err != nil {
				return err
			}
			rec.FrontAPIKey = k
		}
	}
	if front.HasMQTTProxy(platform) {
		rec.MQTTPort = p.freePortFrom(MQTTPortBase, existing, rec.Port)
	}
	if platform == front.PlatformElegoo {
		rec.LoopbackIP = freeLoopback(existing)
	}
	return nil
}

// ElegooPorts are the fixed ports Elegoo clients use whatever the user typed: SDCP's WebSocket and web server on
// 3030 (OrcaSlicer's ElegooLink hard-codes it), 80, Moonraker's 7125 and the webcam's 8080 (research B.4, §3.4).
var ElegooPorts = []int{3030, 80, 7125, 8080}

// freeLoopback is the first loopback address from 127.0.0.2 that no printer has and where port 3030 can be bound
// now; "" when none can (macOS answers only on 127.0.0.1 until an lo0 alias is added).
func freeLoopback(existing []credstore.Record) string {
	taken := map[string]bool{}
	for _, r := range existing {
		taken[r.LoopbackIP] = true
	}
	for n := 2; n < 255; n++ {
		ip := "127.0.0." + strconv.Itoa(n)
		if taken[ip] {
			continue
		}
		l, err := net.Listen("tcp", net.JoinHostPort(ip, "3030"))
		if err != nil {
			continue
		}
		l.Close()
		return ip
	}
	return ""
}

// serveFixedPorts serves the printer's handler on its loopback address's fixed ports as well (ElegooPorts). A
// port that cannot be bound (80 needs CAP_NET_BIND_SERVICE, or another program has it) is logged and skipped.
func (d *Daemon) serveFixedPorts(ps *printerServer) {
	if ps.rec.LoopbackIP == "" {
		return
	}
	var served []string
	for _, port := range ElegooPorts {
		addr := net.JoinHostPort(ps.rec.LoopbackIP, strconv.Itoa(port))
		l, err := net.Listen("tcp", addr)
		if err != nil {
			d.log.Warn("fixed port not served", zap.String("printer", ps.rec.Name), zap.String("addr", addr), zap.Error(err),
				zap.String("advice", "free the port; port 80 needs root or CAP_NET_BIND_SERVICE (setcap cap_net_bind_service=+ep oeproxy); on macOS add the address first: sudo ifconfig lo0 alias "+ps.rec.LoopbackIP+" up"))
			continue
		}
		served = append(served, addr)
		d.wg.Add(1)
		go func() {
			defer d.wg.Done()
			if err := ps.srv.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
				d.log.Error("fixed port listener stopped", zap.String("printer", ps.rec.Name), zap.String("addr", addr), zap.Error(err))
			}
		}()
	}
	if len(served) > 0 {
		d.log.Info("printer serving on its fixed ports", zap.String("printer", ps.rec.Name), zap.Strings("addrs", served))
	}
}

// freePortFrom is the first port from base that no stored printer uses (for HTTP or MQTT), that is not also,
// and that can be bound now.
func (p *Printers) freePortFrom(base int, existing []credstore.Record, also int) int {
	owned := map[int]bool{also: true}
	for _, r := range existing {
		owned[r.Port], owned[r.MQTTPort] = true, true
	}
	host := p.ListenHost
	if host == "" {
		host = "127.0.0.1"
	}
	for port := base; port <= 65535; port++ {
		if owned[port] {
			continue
		}
		l, err := net.Listen("tcp", net.JoinHostPort(strings.Trim(host, "[]"), strconv.Itoa(port)))
		if err != nil {
			continue
		}
		l.Close()
		return port
	}
	return 0
}

// SetMQTT implements MQTTControl.
func (p *Printers) SetMQTT(_ context.Context, name string, req control.MQTTRequest) (credstore.PublicRecord, error) {
	enable, port := req.Enable, req.Port
	p.mu.Lock()
	defer p.mu.Unlock()
	if port < 0 || port > 65535 {
		return credstore.PublicRecord{}, fmt.Errorf("%w: port %d is not a TCP port", control.ErrInvalid, port)
	}
	existing, err := p.Store.List()
	if err != nil {
		return credstore.PublicRecord{}, err
	}
	var rec credstore.Record
	err = p.Store.Update(name, func(r *credstore.Record) error {
		r.MQTTTLS = enable && req.TLS
		switch {
		case !enable:
			r.MQTTPort = 0
		case port != 0:
			r.MQTTPort = port
		case r.MQTTPort == 0:
			others := slices.DeleteFunc(slices.Clone(existing), func(o credstore.Record) bool { return o.Name == name })
			if r.MQTTPort = p.freePortFrom(MQTTPortBase, others, r.Port); r.MQTTPort == 0 {
				return errors.New("no free port for the MQTT bridge")
			}
		}
		rec = *r
		return nil
	})
	if err != nil {
		return credstore.PublicRecord{}, err
	}
	if p.OnMQTT != nil {
		if err := p.OnMQTT(rec); err != nil {
			return rec.PublicWithHost(p.ListenHost), fmt.Errorf("printer %q: MQTT bridge stored, but it did not start: %w", name, err)
		}
	}
	return rec.PublicWithHost(p.ListenHost), nil
}

// detectPlatform asks the plugin of a record about to be stored which platform it runs (PlatformDetector with
// the daemon's transport).
func (d *Daemon) detectPlatform(ctx context.Context, rec credstore.Record) (string, error) {
	return PlatformDetector(d.o.Transport, d.cfg().OctoEverywhere.Auth, d.log)(ctx, rec)
}

// PlatformDetector returns a Printers.DetectPlatform that asks the record's plugin through a proxy.Handler of its
// own over tr (the same relay view and credential as the printer's port); for commands run without a daemon too.
func PlatformDetector(tr http.RoundTripper, auth string, log *zap.Logger) func(context.Context, credstore.Record) (string, error) {
	return func(ctx context.Context, rec credstore.Record) (string, error) {
		relay, err := url.Parse(rec.URL)
		if err != nil {
			return "", err
		}
		h, err := proxy.New(proxy.Printer{Name: rec.Name, RelayURL: relay, Auth: auth,
			BasicUser: rec.BasicUser, BasicPassword: rec.BasicPassword, BearerToken: rec.BearerToken},
			proxy.Options{Transport: tr, Logger: log})
		if err != nil {
			return "", err
		}
		defer h.Close()
		return h.DetectPlatform(ctx)
	}
}

// startMQTT opens the printer's MQTT bridge when its record has a port. A busy port fails only the bridge.
func (d *Daemon) startMQTT(ps *printerServer) {
	if ps.rec.MQTTPort == 0 {
		return
	}
	addr := net.JoinHostPort(d.cfg().Listen.Host, strconv.Itoa(ps.rec.MQTTPort))
	b, err := mqttbridge.New(mqttbridge.Options{
		Dial: func(ctx context.Context) (*websocket.Conn, *http.Response, func(), error) {
			return ps.handler.cur.Load().DialMQTT(ctx)
		},
		Printer:      ps.rec.Name,
		Logger:       d.log,
		PingInterval: d.cfg().WebSocket.PingInterval,
	})
	var tlsConf *tls.Config
	if err == nil && ps.rec.MQTTTLS {
		tlsConf, err = mqttbridge.SelfSignedTLS([]string{d.cfg().Listen.Host})
	}
	if err == nil {
		var l net.Listener
		if l, err = net.Listen("tcp", addr); err == nil {
			scheme := "mqtt://"
			if tlsConf != nil {
				l, scheme = tls.NewListener(l, tlsConf), "mqtts://"
			}
			ps.mqttMu.Lock()
			ps.mqtt = b
			ps.mqttMu.Unlock()
			d.wg.Add(1)
			go func() {
				defer d.wg.Done()
				if err := b.Serve(l); err != nil {
					d.log.Error("MQTT bridge stopped", zap.String("printer", ps.rec.Name), zap.Error(err))
				}
			}()
			d.log.Info("MQTT bridge serving", zap.String("printer", ps.rec.Name), zap.String("mqtt", scheme+addr))
			return
		}
	}
	d.log.Error("MQTT bridge did not start", zap.String("printer", ps.rec.Name), zap.String("addr", addr),
		zap.String("advice", "free the port, or give the bridge another with `oeproxy mqtt enable "+ps.rec.Name+" --port P`"), zap.Error(err))
}

// stopMQTT closes the printer's MQTT bridge and its clients.
func (ps *printerServer) stopMQTT() {
	ps.mqttMu.Lock()
	b := ps.mqtt
	ps.mqtt = nil
	ps.mqttMu.Unlock()
	if b != nil {
		_ = b.Close()
	}
}

// setMQTT applies a changed MQTT port to a served printer (Printers.OnMQTT).
func (d *Daemon) setMQTT(rec credstore.Record) error {
	d.mu.Lock()
	ps := d.printers[rec.Name]
	d.mu.Unlock()
	if ps == nil {
		return nil
	}
	ps.stopMQTT()
	d.mu.Lock()
	ps.rec.MQTTPort, ps.rec.MQTTTLS = rec.MQTTPort, rec.MQTTTLS
	d.mu.Unlock()
	d.startMQTT(ps)
	ps.mqttMu.Lock()
	started := ps.mqtt != nil
	ps.mqttMu.Unlock()
	if rec.MQTTPort != 0 && !started {
		return fmt.Errorf("port %d did not open (see the daemon log)", rec.MQTTPort)
	}
	return nil
}
