package proxy

import (
	"net/http/httptest"
	"testing"
)

// A printer's own loopback address (127.0.0.2 with Elegoo's fixed ports) passes the Host and Origin checks, as
// OrcaSlicer's ElegooLink and the printer's web UI use it; another site's Origin still does not.
func TestOwnLoopbackAddressPassesTheGuards(t *testing.T) {
	for _, host := range []string{"127.0.0.2:3030", "127.0.0.2", "127.0.0.3:7125", "127.0.0.2:8080"} {
		if !HostAllowed(host, []string{"127.0.0.1:5003"}, nil) {
			t.Errorf("Host %s refused", host)
		}
		r := httptest.NewRequest("POST", "http://"+host+"/uploadFile/upload", nil)
		r.Header.Set("Origin", "http://"+host)
		if !OriginAllowed(r) {
			t.Errorf("Origin http://%s refused on its own Host", host)
		}
		r.Header.Set("Origin", "http://evil.example")
		if OriginAllowed(r) {
			t.Errorf("a foreign Origin passed on Host %s", host)
		}
	}
}
