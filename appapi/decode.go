package appapi

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"unicode"
)

// envelope is the wrapper real App API responses carry (research §4.2).
type envelope struct {
	Status      int
	Error       string
	IsUserError bool
}

// splitEnvelope returns the payload of body: the Result of an envelope, or body itself when it is bare. env is
// nil for a bare body. A body that is empty or only whitespace gives a nil payload. err is set when body is not
// JSON at all.
func splitEnvelope(body []byte) (payload []byte, env *envelope, err error) {
	body = bytes.TrimSpace(body)
	if len(body) == 0 {
		return nil, nil, nil
	}
	if !json.Valid(body) {
		return nil, nil, fmt.Errorf("%w: the body is not JSON", ErrUnexpectedResponse)
	}
	var top map[string]json.RawMessage
	if json.Unmarshal(body, &top) != nil {
		return body, nil, nil // valid JSON but not an object (null, array, ...): bare
	}
	result, hasResult := field(top, "Result")
	status, hasStatus := field(top, "Status")
	if !hasResult || !hasStatus {
		return body, nil, nil
	}
	env = &envelope{Status: jsonInt(status)}
	if e, ok := field(top, "Error"); ok {
		env.Error = jsonText(e)
	}
	if u, ok := field(top, "IsUserError"); ok {
		_ = json.Unmarshal(u, &env.IsUserError)
	}
	if bytes.Equal(bytes.TrimSpace(result), []byte("null")) {
		result = nil
	}
	return result, env, nil
}

// field looks name up the way ASP.NET and Go's encoding/json do: exact first, then ignoring letter case.
func field(m map[string]json.RawMessage, name string) (json.RawMessage, bool) {
	if v, ok := m[name]; ok {
		return v, true
	}
	for k, v := range m {
		if strings.EqualFold(k, name) {
			return v, true
		}
	}
	return nil, false
}

// jsonInt reads a number or a numeric string; anything else is 0.
func jsonInt(raw json.RawMessage) int {
	var n json.Number
	if json.Unmarshal(raw, &n) != nil {
		var s string
		if json.Unmarshal(raw, &s) != nil {
			return 0
		}
		n = json.Number(s)
	}
	i, err := strconv.Atoi(n.String())
	if err != nil {
		return 0
	}
	return i
}

// jsonText reads a string; other JSON values are kept as their text, null as "".
func jsonText(raw json.RawMessage) string {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s
	}
	t := string(bytes.TrimSpace(raw))
	if t == "null" {
		return ""
	}
	return t
}

// maxDetail bounds how much of OctoEverywhere's message goes into an error.
const maxDetail = 300

// errorDetail extracts a human message from an error body: the envelope's Error, a bare Error/Message/detail/
// title field, or a short plain-text body. The token is removed in case the server echoed it.
func errorDetail(body []byte, token string) string {
	var msg string
	if _, env, err := splitEnvelope(body); err == nil && env != nil {
		msg = env.Error
	} else if err == nil {
		var top map[string]json.RawMessage
		if json.Unmarshal(bytes.TrimSpace(body), &top) == nil {
			for _, k := range []string{"Error", "Message", "detail", "title"} {
				if v, ok := field(top, k); ok {
					if msg = jsonText(v); msg != "" {
						break
					}
				}
			}
		}
	} else if !bytes.ContainsAny(body, "<>") { // plain text, but not an HTML error page
		msg = string(body)
	}
	return cleanDetail(msg, token)
}

// cleanDetail makes a server message safe to print on one line: no token, no control characters, bounded.
func cleanDetail(msg, token string) string {
	if token != "" {
		msg = strings.ReplaceAll(msg, token, "[redacted]")
	}
	msg = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return ' '
		}
		return r
	}, msg)
	msg = strings.Join(strings.Fields(msg), " ")
	if r := []rune(msg); len(r) > maxDetail {
		msg = string(r[:maxDetail]) + "..."
	}
	return msg
}

// decodeResponse turns a status and body into the payload to decode, or into the error the call returns.
func decodeResponse(status int, header http.Header, body []byte, token string) ([]byte, error) {
	if status >= 200 && status < 300 {
		payload, env, err := splitEnvelope(body)
		if err != nil {
			return nil, err
		}
		// An envelope may carry an error in a 200 response; trust the envelope then.
		if env != nil && env.Status >= 400 {
			return nil, statusError(env.Status, header, cleanDetail(env.Error, token))
		}
		return payload, nil
	}
	return nil, statusError(status, header, errorDetail(body, token))
}

// statusError maps an error status to the typed errors of this package.
func statusError(status int, header http.Header, detail string) error {
	switch {
	case status >= 600 && status <= 699:
		return newOEError(status, detail)
	case status == http.StatusTooManyRequests:
		return &RateLimitError{Wait: retryAfter(header), Server: true}
	default:
		return &HTTPError{StatusCode: status, Detail: detail}
	}
}
