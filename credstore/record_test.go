package credstore

import (
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"
)

func TestPublicJSONHasTheContractKeysAndNoSecret(t *testing.T) {
	r := sampleRecord(t, "mk4", 5001)
	b, err := json.Marshal(r.Public())
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	var keys []string
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	want := "active_route app_connection_id companion_url created_at has_front_api_key has_octoprint_api_key lan_url local_url loopback_address mqtt_port mqtt_tls name platform port printer_id printer_name relay_host route webhook_set_at"
	if strings.Join(keys, " ") != want {
		t.Fatalf("keys %v, want %s", keys, want)
	}
	for k, v := range map[string]any{
		"name": "mk4", "port": float64(5001), "local_url": "http://127.0.0.1:5001", "route": "relay",
		"printer_name": r.PrinterName, "app_connection_id": r.ConnectionID, "relay_host": relayHost(r.URL),
		"created_at": "2025-03-04T05:06:07Z", "printer_id": r.PrinterID, "has_octoprint_api_key": true,
		"webhook_set_at": "2025-04-05T06:07:08Z",
	} {
		if m[k] != v {
			t.Errorf("%s = %v, want %v", k, m[k], v)
		}
	}
	if !strings.HasPrefix(m["relay_host"].(string), "app-") {
		t.Errorf("relay_host %v", m["relay_host"])
	}
	for _, secret := range []string{r.BasicUser, r.BasicPassword, r.BearerToken, r.AppAPIToken, r.OctoPrintAPIKey, r.WebhookURL} {
		if strings.Contains(string(b), secret) {
			t.Errorf("public JSON contains a secret: %s", b)
		}
	}

	r.WebhookSetAt, r.OctoPrintAPIKey = time.Time{}, ""
	b, _ = json.Marshal(r.PublicWithHost("::1"))
	for _, want := range []string{`"local_url":"http://[::1]:5001"`, `"webhook_set_at":null`, `"has_octoprint_api_key":false`} {
		if !strings.Contains(string(b), want) {
			t.Errorf("%s lacks %s", b, want)
		}
	}
}

func TestRecordNeverPrintsSecrets(t *testing.T) {
	r := sampleRecord(t, "mk4", 5001)
	for _, verb := range []string{"%v", "%+v", "%#v", "%s"} {
		out := fmt.Sprintf(verb, r)
		for _, secret := range []string{r.BasicUser, r.BasicPassword, r.BearerToken, r.AppAPIToken, r.OctoPrintAPIKey} {
			if strings.Contains(out, secret) {
				t.Errorf("%s prints a secret: %s", verb, out)
			}
		}
		if !strings.Contains(out, "mk4") {
			t.Errorf("%s does not even name the record: %s", verb, out)
		}
	}
	if _, err := json.Marshal(r); err == nil {
		t.Error("json.Marshal(Record) succeeded; it must refuse")
	}
}

func TestSlug(t *testing.T) {
	for in, want := range map[string]string{
		"Prusa MK4":                    "prusa-mk4",
		"  Voron 2.4 (350mm)  ":        "voron-2-4-350mm",
		"Ender-3 V2":                   "ender-3-v2",
		"Büro":                         "b-ro",
		"":                             "printer",
		"!!!":                          "printer",
		strings.Repeat("ab ", 40):      strings.TrimRight(strings.Repeat("ab-", 21), "-"),
		strings.Repeat("x", 70) + "yz": strings.Repeat("x", 63),
	} {
		got := Slug(in)
		if got != want {
			t.Errorf("Slug(%q) = %q, want %q", in, got, want)
		}
		if err := ValidateName(got); err != nil {
			t.Errorf("Slug(%q) = %q is not a valid name: %v", in, got, err)
		}
	}
}

func TestValidateName(t *testing.T) {
	for name, ok := range map[string]bool{
		"mk4": true, "a": true, "prusa_mk4-2": true, "0day": true, strings.Repeat("a", 63): true,
		"": false, "-x": false, "_x": false, "MK4": false, "a b": false, "a/b": false, "a.b": false,
		strings.Repeat("a", 64): false, "é": false,
	} {
		err := ValidateName(name)
		if (err == nil) != ok {
			t.Errorf("ValidateName(%q) = %v, want ok=%v", name, err, ok)
		}
		if err != nil && !errors.Is(err, ErrInvalid) {
			t.Errorf("ValidateName(%q) error is not ErrInvalid", name)
		}
	}
}
