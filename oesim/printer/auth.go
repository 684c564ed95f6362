package printer

import (
	"crypto/subtle"
	"net/http"
	"strings"
)

// octoPrintForbidden is the error text OctoPrint (Flask/werkzeug) answers with a 403 when the
// API key is missing or wrong: OctoPrint treats such a request as anonymous, and anonymous
// has no permissions (OctoPrint issue #2706: 403, not 401).
const octoPrintForbidden = "You don't have the permission to access the requested resource. It is either read-protected or not readable by the server."

func keyEqual(got, want string) bool {
	return got != "" && subtle.ConstantTimeCompare([]byte(got), []byte(want)) == 1
}

// octoPrintKey returns the API key a request carries in any of OctoPrint's carriers.
func octoPrintKey(r *http.Request) string {
	if k := r.Header.Get("X-Api-Key"); k != "" {
		return k
	}
	if k := r.URL.Query().Get("apikey"); k != "" {
		return k
	}
	if a := r.Header.Get("Authorization"); len(a) > 7 && strings.EqualFold(a[:7], "bearer ") {
		return strings.TrimSpace(a[7:])
	}
	return ""
}
