package printer

import (
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/coder/websocket"
)

func TestMoonrakerHTTP(t *testing.T) {
	t.Parallel()
	_, api, fe := newMoonraker(t, MoonrakerOptions{PrinterID: testID, Name: "voron"})
	_, bare, _ := newMoonraker(t, MoonrakerOptions{})
	tests := []struct {
		name   string
		url    string
		status int
		check  func(result any) bool
	}{
		{"server info", api.URL + "/server/info", 200, func(r any) bool {
			return dig(r, "moonraker_version") == moonrakerVersion && dig(r, "klippy_state") == "ready"
		}},
		{"printer info", api.URL + "/printer/info", 200, func(r any) bool { return dig(r, "hostname") == "voron" && dig(r, "state") == "ready" }},
		{"query all fields", api.URL + "/printer/objects/query?extruder&print_stats", 200, func(r any) bool {
			return dig(r, "status", "extruder", "temperature") != nil && dig(r, "status", "print_stats", "state") == "standby" && dig(r, "eventtime") != nil
		}},
		{"query some fields", api.URL + "/printer/objects/query?extruder=target", 200, func(r any) bool {
			e, _ := dig(r, "status", "extruder").(map[string]any)
			return len(e) == 1 && e["target"] != nil
		}},
		{"printer id", api.URL + "/server/database/item?namespace=octoeverywhere&key=public.printerId", 200, func(r any) bool {
			return dig(r, "namespace") == "octoeverywhere" && dig(r, "key") == "public.printerId" && dig(r, "value") == testID
		}},
		{"public", api.URL + "/server/database/item?namespace=octoeverywhere&key=public", 200, func(r any) bool {
			return dig(r, "value", "printerId") == testID && dig(r, "value", "pluginVersion") == DefaultPluginVersion
		}},
		{"unknown key", api.URL + "/server/database/item?namespace=octoeverywhere&key=public.nope", 404, nil},
		{"not installed", bare.URL + "/server/database/item?namespace=octoeverywhere&key=public.printerId", 404, nil},
		{"octoprint_compat version", api.URL + "/api/version", 200, nil},
		{"frontend forwards api", fe.URL + "/server/info", 200, func(r any) bool { return dig(r, "moonraker_version") == moonrakerVersion }},
		{"unknown path", api.URL + "/server/nothing", 404, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			resp, body := do(t, http.MethodGet, tc.url, nil, nil)
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tc.status, body)
			}
			v := decodeJSON(t, body)
			if tc.status != 200 {
				if code, _ := dig(v, "error", "code").(float64); int(code) != tc.status || dig(v, "error", "message") == "" {
					t.Fatalf("error body %s", body)
				}
				return
			}
			if tc.check == nil {
				if text, _ := v["text"].(string); !strings.HasPrefix(text, "OctoPrint") {
					t.Fatalf("compat version %s", body)
				}
				return
			}
			if !tc.check(v["result"]) {
				t.Fatalf("unexpected result %s", body)
			}
		})
	}
}

func TestMoonrakerAuth(t *testing.T) {
	t.Parallel()
	_, api, _ := newMoonraker(t, MoonrakerOptions{APIKey: "MKEY", PrinterID: testID})
	key := map[string]string{"X-Api-Key": "MKEY"}
	cases := []struct {
		name   string
		url    string
		hdr    map[string]string
		status int
	}{
		{"no key", "/server/info", nil, 401},
		{"wrong key", "/server/info", map[string]string{"X-Api-Key": "nope"}, 401},
		{"header key", "/server/info", key, 200},
		{"bogus token", "/server/info?token=abc", nil, 401},
		{"db without key", "/server/database/item?namespace=octoeverywhere&key=public.printerId", nil, 401},
		{"token without key", "/access/oneshot_token", nil, 401},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			resp, body := do(t, http.MethodGet, api.URL+tc.url, tc.hdr, nil)
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tc.status, body)
			}
			if tc.status == 401 && dig(decodeJSON(t, body), "error", "code") != 401.0 {
				t.Fatalf("401 body %s", body)
			}
		})
	}

	t.Run("oneshot token works once", func(t *testing.T) {
		_, body := do(t, http.MethodGet, api.URL+"/access/oneshot_token", key, nil)
		tok, _ := decodeJSON(t, body)["result"].(string)
		if tok == "" {
			t.Fatalf("token %s", body)
		}
		u := api.URL + "/server/info?token=" + url.QueryEscape(tok)
		if resp, b := do(t, http.MethodGet, u, nil, nil); resp.StatusCode != 200 {
			t.Fatalf("first use %d %s", resp.StatusCode, b)
		}
		if resp, _ := do(t, http.MethodGet, u, nil, nil); resp.StatusCode != 401 {
			t.Fatalf("second use %d, want 401", resp.StatusCode)
		}
	})

	t.Run("websocket", func(t *testing.T) {
		_, resp, err := websocket.Dial(testCtx(t), wsURL(api, "/websocket"), nil)
		if err == nil || resp == nil || resp.StatusCode != 401 {
			t.Fatalf("dial without key: %v %v", resp, err)
		}
		dialWS(t, wsURL(api, "/websocket"), http.Header{"X-Api-Key": {"MKEY"}}).CloseNow()
		_, body := do(t, http.MethodGet, api.URL+"/access/oneshot_token", key, nil)
		tok := decodeJSON(t, body)["result"].(string)
		dialWS(t, wsURL(api, "/websocket?token="+url.QueryEscape(tok)), nil).CloseNow()
	})
}

func TestMoonrakerUpload(t *testing.T) {
	t.Parallel()
	m, api, _ := newMoonraker(t, MoonrakerOptions{APIKey: "MKEY"})
	key := map[string]string{"X-Api-Key": "MKEY"}
	const size = 2<<20 + 3
	fields := [][2]string{{"root", "gcodes"}, {"path", "voron"}, {"print", "true"}} // PrusaSlicer's Moonraker host type
	resp, body, sum := postUpload(t, api.URL+"/server/files/upload", key, fields, "part.gcode", size, false)
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("status %d: %s", resp.StatusCode, body)
	}
	v := decodeJSON(t, body)
	if dig(v, "result", "action") != "create_file" || dig(v, "result", "item", "path") != "voron/part.gcode" ||
		dig(v, "result", "item", "root") != "gcodes" || dig(v, "result", "item", "size") != float64(size) ||
		dig(v, "result", "print_started") != true {
		t.Fatalf("body %s", body)
	}
	if loc := resp.Header.Get("Location"); loc != api.URL+"/server/files/gcodes/voron/part.gcode" {
		t.Fatalf("Location %q", loc)
	}
	ups := m.Uploads()
	if len(ups) != 1 || ups[0].Size != size || ups[0].SHA256 != sum() || ups[0].Root != "gcodes" || ups[0].Path != "voron" || !ups[0].Print {
		t.Fatalf("uploads %+v, want sha %s", ups, sum())
	}
	if !m.Printing() {
		t.Fatal("print=true did not start a print")
	}

	refusals := []struct {
		name    string
		fields  [][2]string
		chunked bool
		status  int
	}{
		{"no content-length", nil, true, http.StatusLengthRequired},
		{"bad checksum", [][2]string{{"checksum", "00"}}, false, http.StatusUnprocessableEntity},
		{"bad root", [][2]string{{"root", "etc"}}, false, http.StatusBadRequest},
	}
	for _, tc := range refusals {
		t.Run(tc.name, func(t *testing.T) {
			resp, body, _ := postUpload(t, api.URL+"/server/files/upload", key, tc.fields, "x.gcode", 100, tc.chunked)
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tc.status, body)
			}
		})
	}
	if n := len(m.Uploads()); n != 1 {
		t.Fatalf("%d uploads recorded, want only the good one", n)
	}

	// The OctoPrint face ([octoprint_compat]) takes the same upload into gcodes.
	resp, body, sum = postUpload(t, api.URL+"/api/files/local", key, [][2]string{{"path", "sub"}}, "compat.gcode", 1234, false)
	if resp.StatusCode != http.StatusCreated || dig(decodeJSON(t, body), "files", "local", "name") != "compat.gcode" {
		t.Fatalf("compat upload %d %s", resp.StatusCode, body)
	}
	if ups := m.Uploads(); len(ups) != 2 || ups[1].Root != "gcodes" || ups[1].Path != "sub" || ups[1].SHA256 != sum() || ups[1].Size != 1234 {
		t.Fatalf("compat upload recorded as %+v", ups)
	}
}

func TestMoonrakerJSONRPC(t *testing.T) {
	t.Parallel()
	_, api, _ := newMoonraker(t, MoonrakerOptions{PrinterID: testID})
	c := dialWS(t, wsURL(api, "/websocket"), nil)
	ctx := testCtx(t)
	next := 0
	// call sends a request and reads until its reply, collecting notifications on the way.
	var notes []map[string]any
	call := func(method string, params any) map[string]any {
		t.Helper()
		next++
		b, _ := json.Marshal(map[string]any{"jsonrpc": "2.0", "method": method, "params": params, "id": next})
		if err := c.Write(ctx, websocket.MessageText, b); err != nil {
			t.Fatal(err)
		}
		for {
			m := decodeJSON(t, []byte(readText(t, c)))
			if m["method"] == "notify_status_update" {
				notes = append(notes, m)
				continue
			}
			if m["id"] != float64(next) || m["jsonrpc"] != "2.0" {
				t.Fatalf("reply %v to id %d", m, next)
			}
			return m
		}
	}
	tests := []struct {
		method string
		params any
		check  func(map[string]any) bool
	}{
		{"server.info", nil, func(m map[string]any) bool { return dig(m, "result", "moonraker_version") == moonrakerVersion }},
		{"printer.info", nil, func(m map[string]any) bool { return dig(m, "result", "state") == "ready" }},
		{"printer.objects.query", map[string]any{"objects": map[string]any{"print_stats": nil, "extruder": []string{"temperature"}}},
			func(m map[string]any) bool {
				e, _ := dig(m, "result", "status", "extruder").(map[string]any)
				return dig(m, "result", "status", "print_stats", "state") == "standby" && len(e) == 1 && e["temperature"] != nil
			}},
		{"server.database.get_item", map[string]any{"namespace": "octoeverywhere", "key": "public.printerId"},
			func(m map[string]any) bool { return dig(m, "result", "value") == testID }},
		{"server.database.get_item", map[string]any{"namespace": "missing"},
			func(m map[string]any) bool { return dig(m, "error", "code") == 404.0 }},
		{"no.such.method", nil, func(m map[string]any) bool { return dig(m, "error", "code") == -32601.0 }},
		{"printer.objects.subscribe", map[string]any{"objects": map[string]any{"heater_bed": nil}},
			func(m map[string]any) bool { return dig(m, "result", "status", "heater_bed", "target") != nil }},
	}
	for _, tc := range tests {
		if m := call(tc.method, tc.params); !tc.check(m) {
			t.Fatalf("%s: %v", tc.method, m)
		}
	}
	// Notifications: two more after the subscription, counter strictly increasing, and the
	// subscribed object present in those.
	afterSub := len(notes)
	for len(notes) < afterSub+2 {
		m := decodeJSON(t, []byte(readText(t, c)))
		if m["method"] == "notify_status_update" {
			notes = append(notes, m)
		}
	}
	prev := 0
	for i, n := range notes {
		params, _ := n["params"].([]any)
		if len(params) != 2 {
			t.Fatalf("params %v", n)
		}
		cnt, _ := dig(params[0], "oesim", "counter").(float64)
		if int(cnt) <= prev {
			t.Fatalf("notification %d counter %v after %d", i, cnt, prev)
		}
		prev = int(cnt)
	}
	last, _ := notes[len(notes)-1]["params"].([]any)
	if dig(last[0], "heater_bed", "temperature") == nil {
		t.Fatalf("subscribed object missing from %v", last[0])
	}
}

func TestStrictOrigin(t *testing.T) {
	t.Parallel()
	_, op := newOctoPrint(t, OctoPrintOptions{StrictOrigin: true})
	_, mr, _ := newMoonraker(t, MoonrakerOptions{StrictOrigin: true})
	_, lax := newOctoPrint(t, OctoPrintOptions{})
	tests := []struct {
		name string
		url  string
		ok   bool
	}{
		{"octoprint strict", wsURL(op, "/sockjs/websocket"), false},
		{"moonraker strict", wsURL(mr, "/websocket"), false},
		{"octoprint default", wsURL(lax, "/sockjs/websocket"), true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			hdr := http.Header{"Origin": {"http://evil.example:1234"}}
			c, resp, err := websocket.Dial(testCtx(t), tc.url, &websocket.DialOptions{HTTPHeader: hdr})
			if c != nil {
				c.CloseNow()
			}
			if tc.ok != (err == nil) {
				t.Fatalf("cross-origin dial: err %v, want ok=%v", err, tc.ok)
			}
			if !tc.ok && (resp == nil || resp.StatusCode != http.StatusForbidden) {
				t.Fatalf("refusal %v, want 403", resp)
			}
		})
	}
}

// TestMoonrakerDatabaseWrite: a client may write to its own namespace and read it back (oeproxy's LAN proof
// writes a nonce there), but not to Moonraker's or the OctoEverywhere plugin's.
func TestMoonrakerDatabaseWrite(t *testing.T) {
	t.Parallel()
	_, api, _ := newMoonraker(t, MoonrakerOptions{PrinterID: testID})
	item := api.URL + "/server/database/item"
	steps := []struct {
		name, method, url, body string
		status                  int
		value                   any
	}{
		{"absent at first", "GET", item + "?namespace=oeproxy&key=proof", "", 404, nil},
		{"write json", "POST", item, `{"namespace":"oeproxy","key":"proof","value":"N1"}`, 200, "N1"},
		{"read back", "GET", item + "?namespace=oeproxy&key=proof", "", 200, "N1"},
		{"overwrite by query", "POST", item + "?namespace=oeproxy&key=proof&value=N2", "", 200, "N2"},
		{"read new value", "GET", item + "?namespace=oeproxy&key=proof", "", 200, "N2"},
		{"plugin namespace is read-only", "POST", item, `{"namespace":"octoeverywhere","key":"public.printerId","value":"X"}`, 403, nil},
		{"printer id unchanged", "GET", item + "?namespace=octoeverywhere&key=public.printerId", "", 200, testID},
		{"no value", "POST", item, `{"namespace":"oeproxy","key":"proof"}`, 400, nil},
		{"delete", "DELETE", item + "?namespace=oeproxy&key=proof", "", 200, "N2"},
		{"gone after delete", "GET", item + "?namespace=oeproxy&key=proof", "", 404, nil},
	}
	for _, s := range steps {
		var body io.Reader
		hdr := map[string]string{}
		if s.body != "" {
			body = strings.NewReader(s.body)
			hdr["Content-Type"] = "application/json"
		}
		resp, b := do(t, s.method, s.url, hdr, body)
		if resp.StatusCode != s.status {
			t.Fatalf("%s: status %d, want %d: %s", s.name, resp.StatusCode, s.status, b)
		}
		if s.value == nil {
			continue
		}
		var doc any
		if err := json.Unmarshal(b, &doc); err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		if got := dig(doc, "result", "value"); got != s.value {
			t.Fatalf("%s: value %v, want %v", s.name, got, s.value)
		}
	}
}
