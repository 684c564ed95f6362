package credstore

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

func TestPlatformFrontKeyAndMQTTPortRoundTrip(t *testing.T) {
	s := openStore(t, dbPath(t), keySource(t, newKey(t)))
	r := sampleRecord(t, "x1c", 5001)
	r.FrontAPIKey, r.MQTTPort = "FrontKeySecret0123", 1883
	if _, err := s.Add(r); err != nil {
		t.Fatal(err)
	}
	got, err := s.Get("x1c")
	if err != nil {
		t.Fatal(err)
	}
	if got.Platform != "bambu" || got.FrontAPIKey != r.FrontAPIKey || got.MQTTPort != 1883 {
		t.Fatalf("read back %q %v %d", got.Platform, got.FrontAPIKey == r.FrontAPIKey, got.MQTTPort)
	}
	b, _ := json.Marshal(got.Public())
	if strings.Contains(string(b), r.FrontAPIKey) || strings.Contains(got.String(), r.FrontAPIKey) {
		t.Fatalf("the front key shows: %s", b)
	}
	for _, want := range []string{`"platform":"bambu"`, `"has_front_api_key":true`, `"mqtt_port":1883`} {
		if !strings.Contains(string(b), want) {
			t.Errorf("%s lacks %s", b, want)
		}
	}

	// An MQTT port is a port: no other printer may take it, for HTTP or MQTT.
	for _, tc := range []struct {
		name       string
		port, mqtt int
	}{{"http-on-mqtt", 1883, 0}, {"mqtt-on-mqtt", 5002, 1883}, {"mqtt-on-http", 5003, 5001}} {
		o := sampleRecord(t, tc.name, tc.port)
		o.MQTTPort = tc.mqtt
		if tc.mqtt == 0 {
			o.MQTTPort = 0
		}
		if _, err := s.Add(o); !errors.Is(err, ErrPortTaken) {
			t.Errorf("%s: %v, want ErrPortTaken", tc.name, err)
		}
	}
	bad := sampleRecord(t, "bad", 5010)
	bad.Platform = "makerbot"
	if _, err := s.Add(bad); !errors.Is(err, ErrInvalid) {
		t.Errorf("unknown platform: %v, want ErrInvalid", err)
	}
}
