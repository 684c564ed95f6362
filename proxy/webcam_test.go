package proxy

import (
	"net/http/httptest"
	"testing"
)

func TestMayStream(t *testing.T) {
	for _, c := range []struct {
		method, target string
		want           bool
	}{
		{"GET", "/webcam/?action=stream", true},
		{"GET", "/api/printer", false},
		{"GET", "/Video/Live", true},
		{"GET", "/snapshot?src=CAM1", true},
		{"GET", "/server/files/roots?x=MJPG", true},
		{"GET", "/st?ream", false}, // the word is split by '?': no match, as when path and query were one string
		{"POST", "/webcam/?action=stream", false},
		{"GET", "/ca", false},
	} {
		r := httptest.NewRequest(c.method, c.target, nil)
		if got := mayStream(r); got != c.want {
			t.Errorf("mayStream(%s %s) = %v, want %v", c.method, c.target, got, c.want)
		}
	}
}
