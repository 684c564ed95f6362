package appapi

import (
	"encoding/json"
	"testing"
	"time"
)

func TestParseTime(t *testing.T) {
	cases := []struct {
		in   string
		want time.Time // zero: never
		bad  bool
	}{
		{in: "2023-02-04T09:51:17.6144047Z", want: time.Date(2023, 2, 4, 9, 51, 17, 614404700, time.UTC)},
		{in: "2026-06-15T01:20:30Z", want: time.Date(2026, 6, 15, 1, 20, 30, 0, time.UTC)},
		{in: "2026-06-15T03:20:30+02:00", want: time.Date(2026, 6, 15, 1, 20, 30, 0, time.UTC)},
		{in: "2026-06-15T01:20:30.1234567", want: time.Date(2026, 6, 15, 1, 20, 30, 123456700, time.UTC)},
		{in: "2026-06-15T01:20:30", want: time.Date(2026, 6, 15, 1, 20, 30, 0, time.UTC)},
		{in: "0001-01-01T00:00:00"},
		{in: "0001-01-01T00:00:00Z"},
		{in: "0001-01-01T00:00:00.0000000"},
		{in: ""},
		{in: "yesterday", bad: true},
		{in: "2026-13-01T00:00:00Z", bad: true},
	}
	for _, c := range cases {
		got, err := ParseTime(c.in)
		if (err != nil) != c.bad {
			t.Errorf("ParseTime(%q) error %v, bad=%v", c.in, err, c.bad)
			continue
		}
		if !got.Equal(c.want) || got.IsZero() != c.want.IsZero() {
			t.Errorf("ParseTime(%q) = %v, want %v", c.in, got, c.want)
		}
		if !got.IsZero() && got.Location() != time.UTC {
			t.Errorf("ParseTime(%q) is not in UTC", c.in)
		}
	}
}

func TestTimeJSON(t *testing.T) {
	var v struct{ A, B, C Time }
	if err := json.Unmarshal([]byte(`{"A":"2023-02-04T09:51:17.6144047Z","B":"0001-01-01T00:00:00","C":null}`), &v); err != nil {
		t.Fatal(err)
	}
	if v.A.Nanosecond() != 614404700 || !v.B.IsZero() || !v.C.IsZero() {
		t.Fatalf("decoded %+v", v)
	}
	if v.B.String() != "never" {
		t.Errorf("String of never = %q", v.B.String())
	}
	out, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"A":"2023-02-04T09:51:17.6144047Z","B":null,"C":null}`; string(out) != want {
		t.Errorf("encoded %s, want %s", out, want)
	}
	for _, bad := range []string{`{"A":12}`, `{"A":"soon"}`, `{"A":true}`} {
		if err := json.Unmarshal([]byte(bad), &v); err == nil {
			t.Errorf("%s decoded without error", bad)
		}
	}
}
