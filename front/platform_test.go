package front

import (
	"context"
	"net/http"
	"testing"
)

func TestPlatformFromVersion(t *testing.T) {
	for v, want := range map[string]string{
		"01.08.05.00-X1C": "bambu", "01.07.00.00-P1S": "bambu", "01.04.00.00-A1 mini": "bambu", "01.01.00.00-H2D": "bambu",
		"1.1.29-Centauri Carbon": "elegoo", "Elegoo CC2 1.0": "elegoo",
		"1.10.3": "", "v0.9.3-12-gabc": "", "": "", "2.8.0-MK4": "",
	} {
		if got := PlatformFromVersion(v); got != want {
			t.Errorf("PlatformFromVersion(%q) = %q, want %q", v, got, want)
		}
	}
}

func TestDetect(t *testing.T) {
	relay := func(body string, status int) func(*http.Request) (*http.Response, error) {
		return func(*http.Request) (*http.Response, error) { return jsonResp(status, body), nil }
	}
	if p, err := Detect(context.Background(), relay(`{"Status":200,"Result":{"PlatformVersion":"01.08.05.00-X1C"}}`, 200)); err != nil || p != "bambu" {
		t.Fatalf("%q %v", p, err)
	}
	if p, err := Detect(context.Background(), relay(`{"Status":601,"Error":"offline"}`, 601)); err == nil || p != "" {
		t.Fatalf("offline: %q %v, want an error", p, err)
	}
}

func TestNewAPIKey(t *testing.T) {
	a, err := NewAPIKey()
	b, _ := NewAPIKey()
	if err != nil || len(a) != 32 || a == b {
		t.Fatalf("%q %q %v", a, b, err)
	}
}
