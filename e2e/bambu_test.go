package e2e

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/oeproxy/oeproxy/oesim"
)

var (
	frontKeyLine = regexp.MustCompile(`(?m)^\s+([0-9A-F]{32})\s*$`)
	mqttLine     = regexp.MustCompile(`mqtt://127\.0\.0\.1:(\d+)`)
)

// TestBambuThroughTheDaemon links a simulated Bambu Lab printer with `oeproxy connect` (the platform comes from
// the plugin), then prints from a PrusaSlicer-shaped curl upload through the OctoPrint front with the key connect
// showed, and reads the printer's MQTT report with Debian's mosquitto_sub / mosquitto_pub through the MQTT port.
func TestBambuThroughTheDaemon(t *testing.T) {
	curl := need(t, "curl")
	sub := need(t, "mosquitto_sub")
	pub := need(t, "mosquitto_pub")
	s := startStack(t, oesim.Options{Printers: []oesim.PrinterOptions{{Name: "X1C", Kind: oesim.KindBambu, Serial: "01S00C111111111"}}})
	p := s.sim.Printers()[0]
	conn := s.sim.Connect(p)
	port := freePort(t)
	cmd := exec.Command(s.bin, "connect", "--completion-url", "-", "--name", "x1c", "--port", strconv.Itoa(port))
	cmd.Env, cmd.Stdin = s.env, strings.NewReader(completionURL(s.sim, conn)+"\n")
	out, err := cmd.CombinedOutput()
	s.outputs.Write(out)
	if err != nil {
		t.Fatalf("oeproxy connect: %v\n%s\ndaemon log:\n%s", err, out, s.log())
	}
	km, mm := frontKeyLine.FindSubmatch(out), mqttLine.FindSubmatch(out)
	if !strings.Contains(string(out), "Platform: bambu") || km == nil || mm == nil {
		t.Fatalf("connect did not report the platform, the front key and the MQTT port:\n%s", out)
	}
	key, mqttPort := string(km[1]), string(mm[1])
	base := "http://127.0.0.1:" + strconv.Itoa(port)

	// The port opens once the daemon has added the printer (connect returns after that).
	waitDial(t, "127.0.0.1:"+strconv.Itoa(port))
	waitDial(t, "127.0.0.1:"+mqttPort)

	file := make([]byte, 5<<20+3)
	_, _ = rand.Read(file)
	path := filepath.Join(t.TempDir(), "benchy.3mf")
	if err := os.WriteFile(path, file, 0o600); err != nil {
		t.Fatal(err)
	}
	upload := func(apiKey string) string {
		args := []string{"-sS", "-o", "/dev/null", "-w", "%{http_code}", "-F", "print=true", "-F", "path=", "-F", "file=@" + path,
			"-A", "PrusaSlicer/2.8.1", base + "/api/files/local"}
		if apiKey != "" {
			args = append([]string{"-H", "X-Api-Key: " + apiKey}, args...)
		}
		b, err := exec.Command(curl, args...).CombinedOutput()
		if err != nil {
			t.Fatalf("curl: %v: %s", err, b)
		}
		return string(b)
	}
	if code := upload(""); code != "403" {
		t.Fatalf("upload without the key: %s, want 403", code)
	}
	if code := upload(key); code != "201" {
		t.Fatalf("upload: %s\ndaemon log:\n%s", code, s.log())
	}
	sum := sha256.Sum256(file)
	if u, ok := p.Plugin().File("gcode/benchy.3mf"); !ok || u.SHA256 != hex.EncodeToString(sum[:]) {
		t.Fatalf("the printer has %+v (%v), want %d bytes %x", u, ok, len(file), sum)
	}
	if st := p.Plugin().Starts(); len(st) != 1 || p.Plugin().State() != "printing" {
		t.Fatalf("no print started: %v %q", st, p.Plugin().State())
	}

	// mosquitto_sub waits for one report; mosquitto_pub asks for a full one (pushall) until it has come.
	subCmd := exec.Command(sub, "-h", "127.0.0.1", "-p", mqttPort, "-t", "device/01S00C111111111/report", "-C", "1", "-W", "60")
	var subOut strings.Builder
	subCmd.Stdout, subCmd.Stderr = &subOut, &subOut
	if err := subCmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- subCmd.Wait() }()
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
wait:
	for {
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("mosquitto_sub: %v: %s\ndaemon log:\n%s", err, subOut.String(), s.log())
			}
			break wait
		case <-tick.C:
			_ = exec.Command(pub, "-h", "127.0.0.1", "-p", mqttPort, "-t", "device/01S00C111111111/request",
				"-m", `{"pushing":{"sequence_id":"0","command":"pushall"}}`).Run()
		}
	}
	if !strings.Contains(subOut.String(), `"gcode_state":"RUNNING"`) {
		t.Fatalf("mosquitto_sub got %q, want a report of the running print", subOut.String())
	}
	s.checkNoSecrets(t, linked{printer: p, conn: conn, name: "x1c", url: base})
	if strings.Contains(s.log(), key) {
		t.Fatal("the front's API key appears in the daemon log")
	}
}

func waitDial(t *testing.T, addr string) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s did not open: %v", addr, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
