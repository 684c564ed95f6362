package front_test

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"

	"github.com/oeproxy/oeproxy/front"
)

// A front answers OctoPrint's API with the key it was given; its plugin calls go through Relay (in oeproxy,
// proxy.Handler's, which adds the App Connection credential).
func Example() {
	relay := func(r *http.Request) (*http.Response, error) {
		// A stand-in for the relay: the plugin's status envelope.
		body := `{"Status":200,"Result":{"JobStatus":{"State":"printing","CurrentPrint":{"Progress":42,"FileName":"benchy"}}}}`
		return &http.Response{StatusCode: 200, Header: http.Header{}, Body: io.NopCloser(strings.NewReader(body))}, nil
	}
	f, err := front.New(front.Options{Relay: relay, APIKey: "0123456789ABCDEF0123456789ABCDEF", PrinterName: "x1c"})
	if err != nil {
		panic(err)
	}
	for _, key := range []string{"", "0123456789ABCDEF0123456789ABCDEF"} {
		r := httptest.NewRequest("GET", "/api/job", nil)
		r.Header.Set("X-Api-Key", key)
		w := httptest.NewRecorder()
		f.ServeHTTP(w, r)
		fmt.Println(w.Code, strings.Contains(w.Body.String(), `"state":"Printing"`))
	}
	// Output:
	// 403 false
	// 200 true
}
