package appapi

import (
	"bytes"
	"encoding/json"
	"fmt"
	"time"
)

// Time is a timestamp from OctoEverywhere. It reads .NET's forms leniently: "2023-02-04T09:51:17.6144047Z"
// (seven fractional digits), RFC 3339 with any offset, a time without a zone (taken as UTC, since the field
// names say Utc), and "0001-01-01T00:00:00", .NET's DateTime.MinValue, which OctoEverywhere sends for "never"
// and which becomes the zero Time (IsZero is true). null and "" are never too.
//
// It writes RFC 3339 in UTC with as many fractional digits as needed, or null for never, and reads back what
// it writes.
type Time struct{ time.Time }

// noZoneLayout is .NET's round-trip format without a zone; the optional fraction takes up to 9 digits.
const noZoneLayout = "2006-01-02T15:04:05.999999999"

// ParseTime parses an OctoEverywhere timestamp as described on Time.
func ParseTime(s string) (Time, error) {
	if s == "" {
		return Time{}, nil
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		var err2 error
		if t, err2 = time.ParseInLocation(noZoneLayout, s, time.UTC); err2 != nil {
			return Time{}, fmt.Errorf("timestamp %q is neither RFC 3339 nor .NET round-trip format: %w", s, err)
		}
	}
	// Year 1 is DateTime.MinValue: "never" (also with a zone, e.g. "0001-01-01T00:00:00Z").
	if t.Year() <= 1 {
		return Time{}, nil
	}
	return Time{t.UTC()}, nil
}

// UnmarshalJSON accepts a string in any form ParseTime accepts, or null.
func (t *Time) UnmarshalJSON(b []byte) error {
	if bytes.Equal(bytes.TrimSpace(b), []byte("null")) {
		*t = Time{}
		return nil
	}
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("timestamp must be a JSON string: %w", err)
	}
	p, err := ParseTime(s)
	if err != nil {
		return err
	}
	*t = p
	return nil
}

// MarshalJSON writes RFC 3339 in UTC, or null when the time is zero (never).
func (t Time) MarshalJSON() ([]byte, error) {
	if t.IsZero() {
		return []byte("null"), nil
	}
	return json.Marshal(t.UTC().Format(time.RFC3339Nano))
}

// String is RFC 3339 in UTC, or "never".
func (t Time) String() string {
	if t.IsZero() {
		return "never"
	}
	return t.UTC().Format(time.RFC3339)
}
