// Package logging owns oeproxy's zap setup and the redaction helpers. A secret (credential, token, API key,
// password) can reach a log line only through these helpers, which always write "[redacted]" in its place.
package logging

import (
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"golang.org/x/term"
)

// Redacted is what every secret is logged as.
const Redacted = "[redacted]"

// New builds the process logger. format is "console", "json" or "" (console when w is a terminal, else JSON).
func New(level, format string, w io.Writer) (*zap.Logger, error) {
	l, _, err := NewWithLevel(level, format, w)
	return l, err
}

// ParseLevel reads a log.level value ("" is info).
func ParseLevel(level string) (zapcore.Level, error) {
	lvl, err := zapcore.ParseLevel(strings.ToLower(strings.TrimSpace(orDefault(level, "info"))))
	if err != nil {
		return lvl, fmt.Errorf("log.level %q: %w (use debug, info, warn or error)", level, err)
	}
	return lvl, nil
}

// NewWithLevel is New that also returns the logger's level, which can be changed while the logger is in use
// (serve changes it when SIGHUP reloads log.level).
func NewWithLevel(level, format string, w io.Writer) (*zap.Logger, zap.AtomicLevel, error) {
	lvl, err := ParseLevel(level)
	if err != nil {
		return nil, zap.AtomicLevel{}, err
	}
	atom := zap.NewAtomicLevelAt(lvl)
	if format == "" {
		format = "json"
		if f, ok := w.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
			format = "console"
		}
	}
	encCfg := zap.NewProductionEncoderConfig()
	encCfg.TimeKey = "ts"
	encCfg.EncodeTime = zapcore.ISO8601TimeEncoder
	// "30s", not 30 (production's seconds as a float): an operator reads the unit with the number.
	encCfg.EncodeDuration = zapcore.StringDurationEncoder
	var enc zapcore.Encoder
	switch format {
	case "json":
		enc = zapcore.NewJSONEncoder(encCfg)
	case "console":
		encCfg.EncodeLevel = zapcore.CapitalLevelEncoder
		enc = zapcore.NewConsoleEncoder(encCfg)
	default:
		return nil, zap.AtomicLevel{}, fmt.Errorf("log.format %q: use console or json", format)
	}
	// Lock: goroutines (listeners, health pollers) log at once, and w need not be safe for concurrent writes.
	core := zapcore.NewCore(enc, zapcore.Lock(zapcore.AddSync(w)), atom)
	return zap.New(core), atom, nil
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// Secret logs that a secret exists without its value.
func Secret(key, value string) zap.Field {
	if value == "" {
		return zap.String(key, "")
	}
	return zap.String(key, Redacted)
}

// secretQueryKeys are query parameters that carry printer or OctoEverywhere credentials.
var secretQueryKeys = map[string]bool{
	"apikey": true, "api_key": true, "token": true, "access_token": true, "oe_api_key": true,
	"apptoken": true, "appapitoken": true, "authbasichttppassword": true, "authbasichttpuser": true, "authbearertoken": true,
	"octoprintapikey": true, "password": true, "secret": true,
}

// RedactURL returns raw with userinfo removed and secret query values replaced. Unparseable input is
// replaced whole, since it may still hold a secret.
func RedactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return Redacted
	}
	if u.User != nil {
		u.User = url.User(Redacted)
	}
	u.RawQuery = redactQuery(u.RawQuery)
	frag := u.EscapedFragment()
	u.Fragment, u.RawFragment = "", ""
	if frag != "" {
		return u.String() + "#" + redactQuery(frag)
	}
	return u.String()
}

func redactQuery(q string) string {
	if q == "" {
		return q
	}
	parts := strings.Split(q, "&")
	for i, p := range parts {
		k, _, hasValue := strings.Cut(p, "=")
		key, err := url.QueryUnescape(k)
		if err != nil {
			key = k
		}
		if hasValue && secretQueryKeys[strings.ToLower(key)] {
			parts[i] = k + "=" + url.QueryEscape(Redacted)
		}
	}
	return strings.Join(parts, "&")
}

// URL logs a URL with its secrets redacted.
func URL(key, raw string) zap.Field { return zap.String(key, RedactURL(raw)) }

// secretHeaders are request and response headers that carry credentials.
var secretHeaders = map[string]bool{
	"Authorization": true, "Proxy-Authorization": true, "Cookie": true, "Set-Cookie": true,
	"X-Api-Key": true, "Apptoken": true, "X-Access-Token": true,
}

// RedactHeader returns a copy of h with credential headers redacted.
func RedactHeader(h http.Header) http.Header {
	out := make(http.Header, len(h))
	for k, v := range h {
		ck := http.CanonicalHeaderKey(k)
		if secretHeaders[ck] || strings.HasPrefix(ck, "X-Api-Key") {
			out[k] = []string{Redacted}
			continue
		}
		out[k] = append([]string(nil), v...)
	}
	return out
}

// Header logs headers with credentials redacted.
func Header(key string, h http.Header) zap.Field { return zap.Any(key, RedactHeader(h)) }
