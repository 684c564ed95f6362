package credstore

import (
	"bufio"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// Environment of the helper process that holds a store open (TestSecondProcessGetsErrInUse).
const (
	envHoldPath = "CREDSTORE_TEST_HOLD_PATH"
	envHoldKey  = "CREDSTORE_TEST_HOLD_KEY"
)

func TestMain(m *testing.M) {
	if path := os.Getenv(envHoldPath); path != "" {
		os.Exit(holdStore(path, os.Getenv(envHoldKey)))
	}
	// Tests use cheap argon2id parameters; stores remember theirs, so this changes no behaviour under test.
	DefaultArgon2 = Argon2Params{Time: 1, MemoryKiB: 1024, Threads: 1}
	goleak.VerifyTestMain(m)
}

// holdStore opens the store, says "ready", and keeps it open until stdin closes.
func holdStore(path, keyB64 string) int {
	key, err := base64.StdEncoding.DecodeString(keyB64)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	ks, err := MasterKey(key)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	s, err := Open(path, ks, Options{})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	fmt.Println("ready")
	_, _ = io.Copy(io.Discard, bufio.NewReader(os.Stdin))
	if err := s.Close(); err != nil {
		return 1
	}
	return 0
}

// newKey is a fresh random master key.
func newKey(t testing.TB) []byte {
	t.Helper()
	k := make([]byte, 32)
	if _, err := rand.Read(k); err != nil {
		t.Fatal(err)
	}
	return k
}

func keySource(t testing.TB, key []byte) KeySource {
	t.Helper()
	ks, err := MasterKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return ks
}

// openStore opens a store and closes it at the end of the test.
func openStore(t testing.TB, path string, ks KeySource) *Store {
	t.Helper()
	s, err := Open(path, ks, Options{LockTimeout: 200 * time.Millisecond})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// mqttPorts makes each sample record's MQTT port and loopback address unique.
var mqttPorts atomic.Int32

// sampleRecord has a distinct, recognisable value in every field, unique per call.
func sampleRecord(t testing.TB, name string, port int) Record {
	t.Helper()
	u := make([]byte, 6)
	_, _ = rand.Read(u)
	tag := fmt.Sprintf("%x", u)
	id := "conn" + tag
	n := mqttPorts.Add(1) // unique per call: MQTT port and loopback address
	return Record{
		Name:                 name,
		ConnectionID:         id,
		URL:                  "https://app-" + tag + "zzzzzzzzzzzzzzzzzzzz.octoeverywhere.com",
		BasicUser:            "BasicUser" + tag,
		BasicPassword:        "BasicPassword" + tag,
		BearerToken:          "BearerToken" + tag,
		AppAPIToken:          "AppAPIToken" + tag,
		OctoPrintAPIKey:      "OctoPrintAPIKey" + tag,
		PrinterName:          "Printer Name " + tag,
		UserPrinterAccessURL: "https://octoeverywhere.com/printer/" + tag,
		LastKnownLocalIP:     "192.168.77." + fmt.Sprint(port%250),
		PrinterID:            "PRINTERID" + tag,
		Port:                 port,
		Route:                RouteRelay,
		LANURL:               "http://192.168.77." + fmt.Sprint(port%250) + ":7125",
		CompanionURL:         "http://192.168.78." + fmt.Sprint(port%250) + ":8787",
		CreatedAt:            time.Date(2025, 3, 4, 5, 6, 7, 890, time.UTC),
		WebhookURL:           "https://hooks.example.net/" + tag,
		WebhookEvents:        []int{1, 2, 14},
		WebhookSetAt:         time.Date(2025, 4, 5, 6, 7, 8, 0, time.UTC),
		Platform:             "bambu",
		FrontAPIKey:          "FrontAPIKey" + tag,
		MQTTPort:             30000 + int(n),
		MQTTTLS:              true,
		LoopbackIP:           fmt.Sprintf("127.1.%d.%d", n/250%250, n%250+2),
	}
}

// identifying lists every value of r that must not be readable in the file.
func identifying(r Record) []string {
	return []string{r.Name, r.ConnectionID, r.URL, relayHost(r.URL), r.BasicUser, r.BasicPassword, r.BearerToken,
		r.AppAPIToken, r.OctoPrintAPIKey, r.FrontAPIKey, r.PrinterName, r.UserPrinterAccessURL, r.LastKnownLocalIP, r.PrinterID,
		r.WebhookURL}
}

func fileSum(t testing.TB, path string) [32]byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return sha256.Sum256(b)
}

// privateDir is a new directory only its owner can use, as Open requires of a data directory (t.TempDir's
// directories follow the umask, usually 0755).
func privateDir(t testing.TB) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	return dir
}

func dbPath(t testing.TB) string { return filepath.Join(privateDir(t), "data", FileName) }
