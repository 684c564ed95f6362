package config

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// A kind says how a key's value is read from a file or the environment. mapstructure's weak typing turns a
// YAML 30 into 30 ns and "fast" into a decode error that names no key, so every value that is not a plain
// string is read here first, key by key, with one line per bad value that says what is allowed.
type kind int

const (
	kindString kind = iota
	kindInt
	kindBool
	kindDuration
	kindSize
	kindList
)

// kinds lists the keys whose value is not a plain string.
var kinds = map[string]kind{
	"listen.port_base":               kindInt,
	"listen.max_connections":         kindInt,
	"octoeverywhere.max_connections": kindInt,
	"listen.allow_non_loopback":      kindBool,
	"store.allow_symlinks":           kindBool,
	"webcam.share_streams":           kindBool,
	"webcam.continue_streams":        kindBool,
	"shutdown_grace":                 kindDuration,
	"websocket.ping_interval":        kindDuration,
	"webcam.linger":                  kindDuration,
	"websocket.max_message_bytes":    kindSize,
	"listen.allowed_hosts":           kindList,
}

var allowedOf = map[kind]string{
	kindInt:      "a whole number",
	kindBool:     "true or false",
	kindDuration: "a duration with a unit such as 500ms, 30s or 2m (a bare number means seconds)",
	kindSize:     "a size in bytes, or with a unit such as 64KiB, 64MiB or 1GiB (KB, MB and GB are powers of 1000)",
	kindList:     "a list of strings",
}

// typed reads raw as k's Go value (int, bool, time.Duration, int64 or []string; other kinds pass unchanged).
func typed(k kind, raw any) (any, error) {
	switch k {
	case kindInt:
		return toInt(raw)
	case kindBool:
		switch v := raw.(type) {
		case bool:
			return v, nil
		case string:
			return strconv.ParseBool(strings.TrimSpace(v))
		}
	case kindDuration:
		return ParseDuration(raw)
	case kindSize:
		return ParseSize(raw)
	case kindList:
		switch v := raw.(type) {
		case []string:
			return v, nil
		case []any:
			out := make([]string, 0, len(v))
			for _, e := range v {
				s, ok := e.(string)
				if !ok {
					return nil, fmt.Errorf("%v is not a string", e)
				}
				out = append(out, s)
			}
			return out, nil
		case string:
			return splitList(v), nil
		}
	default:
		return raw, nil
	}
	return nil, fmt.Errorf("%T", raw)
}

func toInt(raw any) (int, error) {
	switch v := raw.(type) {
	case int:
		return v, nil
	case int64:
		if v >= math.MinInt && v <= math.MaxInt {
			return int(v), nil
		}
	case float64:
		if v == math.Trunc(v) && math.Abs(v) < 1<<53 {
			return int(v), nil
		}
	case string:
		return strconv.Atoi(strings.TrimSpace(v))
	}
	return 0, fmt.Errorf("not a whole number")
}

// ParseDuration reads a duration from a config file or the environment: a Go duration with a unit ("30s",
// "1m30s"), or a bare number, which means seconds (YAML's 30 is 30 s, not 30 ns).
func ParseDuration(raw any) (time.Duration, error) {
	var secs float64
	switch v := raw.(type) {
	case time.Duration:
		return v, nil
	case int:
		secs = float64(v)
	case int64:
		secs = float64(v)
	case float64:
		secs = v
	case string:
		s := strings.TrimSpace(v)
		if f, err := strconv.ParseFloat(s, 64); err == nil {
			secs = f
			break
		}
		return time.ParseDuration(s)
	default:
		return 0, fmt.Errorf("%T is not a duration", raw)
	}
	if math.IsNaN(secs) || math.Abs(secs) > math.MaxInt64/float64(time.Second) {
		return 0, fmt.Errorf("%v seconds is out of range", secs)
	}
	return time.Duration(secs * float64(time.Second)), nil
}

var sizeUnits = map[string]int64{
	"": 1, "b": 1,
	"k": 1 << 10, "kib": 1 << 10, "kb": 1000,
	"m": 1 << 20, "mib": 1 << 20, "mb": 1000 * 1000,
	"g": 1 << 30, "gib": 1 << 30, "gb": 1000 * 1000 * 1000,
}

// ParseSize reads a byte count: a whole number of bytes, or a number with a unit (64MiB, 64 MiB, 1.5GiB; KiB, MiB
// and GiB are powers of 1024, KB, MB and GB powers of 1000; K, M and G mean KiB, MiB and GiB).
func ParseSize(raw any) (int64, error) {
	switch v := raw.(type) {
	case int:
		return int64(v), nil
	case int64:
		return v, nil
	case float64:
		if v == math.Trunc(v) && math.Abs(v) < 1<<53 {
			return int64(v), nil
		}
		return 0, fmt.Errorf("%v is not a whole number of bytes", v)
	case string:
		s := strings.TrimSpace(v)
		i := strings.IndexFunc(s, func(r rune) bool { return (r < '0' || r > '9') && r != '.' && r != '-' && r != '+' })
		num, unit := s, ""
		if i >= 0 {
			num, unit = strings.TrimSpace(s[:i]), strings.ToLower(strings.TrimSpace(s[i:]))
		}
		mult, ok := sizeUnits[unit]
		if !ok || num == "" {
			return 0, fmt.Errorf("%q is not a size", s)
		}
		if n, err := strconv.ParseInt(num, 10, 64); err == nil {
			if n > math.MaxInt64/mult || n < math.MinInt64/mult {
				return 0, fmt.Errorf("%q is out of range", s)
			}
			return n * mult, nil
		}
		f, err := strconv.ParseFloat(num, 64)
		if err != nil || math.IsNaN(f) || math.Abs(f*float64(mult)) > 1<<62 {
			return 0, fmt.Errorf("%q is not a size", s)
		}
		return int64(f * float64(mult)), nil
	}
	return 0, fmt.Errorf("%T is not a size", raw)
}

// FormatBytes writes a size the way people read limits, in the units ParseSize reads back: "500 MiB",
// "1.5 GiB", "512 B".
func FormatBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	v := float64(n) / float64(div)
	s := fmt.Sprintf("%.1f", v)
	if v == float64(int64(v)) {
		s = fmt.Sprintf("%d", int64(v))
	}
	return s + " " + string("KMGTPE"[exp]) + "iB"
}

// readTyped replaces each typed key's raw value in settings by its Go value and returns one problem line per
// value that cannot be read. A bad value is replaced by the key's default, so that the checks that follow do
// not report the same key a second time with a value the user never wrote.
func readTyped(get func(string) any, set func(string, any)) []string {
	var problems []string
	for _, key := range Keys() {
		k := kinds[key]
		if k == kindString {
			continue
		}
		raw := get(key)
		val, err := typed(k, raw)
		if err != nil {
			problems = append(problems, fmt.Sprintf("%s: %s is not allowed: %s", key, quote(raw), allowedOf[k]))
			val, _ = typed(k, defaults[key])
		}
		set(key, val)
	}
	return problems
}
