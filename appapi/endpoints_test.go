package appapi

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"reflect"
	"testing"
	"time"
)

const infoJSON = `{"PrinterName":"My Printer","PrinterLocalIp":"192.168.1.5","IsOnline":true,
 "LastDisconnectTimeUtc":"0001-01-01T00:00:00","LastConnectionTimeUtc":"2023-02-04T09:51:17.6144047Z",
 "UserFacingPrinterUrl":"https://octoeverywhere.com/view/My%20Printer",
 "PrinterLimits":{"MaxDownloadFileSizeBytes":524288000,"MaxUploadFileSizeBytes":104857600,
  "MaxSingleWebcamStreamLengthSeconds":120,"MaxTotalWebcamStreamTimePerTimeWindowSeconds":null,"WebcamStreamTimeWindow":3600}}`

func ptr[T any](v T) *T { return &v }

func wantInfo() *Info {
	return &Info{
		PrinterName: "My Printer", PrinterLocalIP: "192.168.1.5", IsOnline: true,
		LastConnection:       Time{time.Date(2023, 2, 4, 9, 51, 17, 614404700, time.UTC)},
		UserFacingPrinterURL: "https://octoeverywhere.com/view/My%20Printer",
		Limits: Limits{MaxDownloadFileSizeBytes: 524288000, MaxUploadFileSizeBytes: 104857600,
			MaxSingleWebcamStreamLengthSeconds: 120, WebcamStreamTimeWindow: ptr[int64](3600)},
	}
}

// TestEndpoints calls every endpoint against a fake API answering in both shapes and checks what was sent and
// what came back.
func TestEndpoints(t *testing.T) {
	type endpoint struct {
		name, method, path string
		result             string // the documented object
		call               func(c *Client) (any, error)
		want               any
		wantBody           map[string]any // JSON body the server must receive (nil: "{}" for POST, none for GET)
	}
	endpoints := []endpoint{
		{name: "info", method: "GET", path: "/api/appconnection/info", result: infoJSON,
			call: func(c *Client) (any, error) { return c.Info(context.Background(), testToken) },
			want: wantInfo()},
		{name: "live link hours", method: "POST", path: "/api/live/createfromappconnection",
			result: `{"LiveId":"aB3","Url":"https://octoeverywhere.com/live/aB3","ShortUrl":"https://oe.ink/l/aB3"}`,
			call: func(c *Client) (any, error) {
				return c.CreateLiveLink(context.Background(), testToken, LiveLinkRequest{Hours: 48})
			},
			want:     &LiveLink{LiveID: "aB3", URL: "https://octoeverywhere.com/live/aB3", ShortURL: "https://oe.ink/l/aB3"},
			wantBody: map[string]any{"ExpirationHours": 48.0}},
		{name: "live link default hours", method: "POST", path: "/api/live/createfromappconnection",
			result: `{"LiveId":"x","Url":"u","ShortUrl":"s"}`,
			call: func(c *Client) (any, error) {
				return c.CreateLiveLink(context.Background(), testToken, LiveLinkRequest{})
			},
			want: &LiveLink{LiveID: "x", URL: "u", ShortURL: "s"}, wantBody: map[string]any{"ExpirationHours": 24.0}},
		{name: "live link until print done", method: "POST", path: "/api/live/createfromappconnection",
			result: `{"LiveId":"x","Url":"u","ShortUrl":"s"}`,
			call: func(c *Client) (any, error) {
				return c.CreateLiveLink(context.Background(), testToken, LiveLinkRequest{UntilPrintDone: true})
			},
			want: &LiveLink{LiveID: "x", URL: "u", ShortURL: "s"}, wantBody: map[string]any{"EndWhenCurrentPrintIsComplete": true}},
		{name: "gadget", method: "POST", path: "/api/gadget/GetStatusFromAppConnection",
			result: `{"State":3,"Status":"Looking Good","StatusColor":"g","Rating":8}`,
			call:   func(c *Client) (any, error) { return c.GadgetStatus(context.Background(), "conn", testToken) },
			want:   &GadgetStatus{State: GadgetActive, Status: "Looking Good", StatusColor: ColorGreen, Rating: 8}},
		{name: "set webhook", method: "POST", path: "/api/appconnection/SetNotificationWebhook", result: `{}`,
			call: func(c *Client) (any, error) {
				return nil, c.SetWebhook(context.Background(), testToken, "https://hook.example/x?secret=s3", []EventType{EventPrintComplete, EventPrintFailed, EventPrintComplete})
			},
			wantBody: map[string]any{"WebhookUrl": "https://hook.example/x?secret=s3", "InclusiveEventTypesFilter": []any{2.0, 3.0}}},
		{name: "set webhook all events", method: "POST", path: "/api/appconnection/SetNotificationWebhook", result: `null`,
			call: func(c *Client) (any, error) {
				return nil, c.SetWebhook(context.Background(), testToken, "https://hook.example/", nil)
			},
			wantBody: map[string]any{"WebhookUrl": "https://hook.example/"}},
		{name: "delete webhook", method: "POST", path: "/api/appconnection/DeleteNotificationWebhook", result: `{}`,
			call: func(c *Client) (any, error) { return nil, c.DeleteWebhook(context.Background(), testToken) }},
		{name: "test webhook", method: "GET", path: "/api/appconnection/TestWebhook", result: `{"StatusCode":200}`,
			call: func(c *Client) (any, error) { return c.TestWebhook(context.Background(), testToken) },
			want: &WebhookTest{StatusCode: 200, Raw: json.RawMessage(`{"StatusCode":200}`)}},
	}
	for _, shape := range []string{"envelope", "bare"} {
		for _, e := range endpoints {
			t.Run(shape+"/"+e.name, func(t *testing.T) {
				body := e.result
				if shape == "envelope" {
					body = wrap(e.result)
				}
				f := newFakeAPI(t, func(w http.ResponseWriter, r *http.Request, n int) { reply(w, 200, body) })
				got, err := e.call(f.client(Options{}))
				if err != nil {
					t.Fatalf("call: %v", err)
				}
				if e.want != nil && !reflect.DeepEqual(got, e.want) {
					t.Errorf("got %#v\nwant %#v", got, e.want)
				}
				reqs := f.requests()
				if len(reqs) != 1 {
					t.Fatalf("server saw %d requests, want 1", len(reqs))
				}
				r := reqs[0]
				if r.Method != e.method || r.Path != e.path || r.Token != testToken {
					t.Errorf("sent %s %s token-ok=%v, want %s %s", r.Method, r.Path, r.Token == testToken, e.method, e.path)
				}
				if e.method == "GET" {
					if r.Body != "" {
						t.Errorf("GET sent a body %q", r.Body)
					}
					return
				}
				if r.ContentType != "application/json" {
					t.Errorf("Content-Type %q", r.ContentType)
				}
				var sent map[string]any
				if err := json.Unmarshal([]byte(r.Body), &sent); err != nil {
					t.Fatalf("POST body %q: %v", r.Body, err)
				}
				want := e.wantBody
				if want == nil {
					want = map[string]any{}
				}
				if !reflect.DeepEqual(sent, want) {
					t.Errorf("POST body %v, want %v", sent, want)
				}
			})
		}
	}
}

// TestInfoJSONIsStable pins the --json keys of Info: renaming one breaks users' scripts.
func TestInfoJSONIsStable(t *testing.T) {
	b, err := json.Marshal(wantInfo())
	if err != nil {
		t.Fatal(err)
	}
	const want = `{"printer_name":"My Printer","printer_local_ip":"192.168.1.5","is_online":true,` +
		`"last_disconnect_time":null,"last_connection_time":"2023-02-04T09:51:17.6144047Z",` +
		`"user_facing_printer_url":"https://octoeverywhere.com/view/My%20Printer","limits":{` +
		`"max_download_file_size_bytes":524288000,"max_upload_file_size_bytes":104857600,` +
		`"max_single_webcam_stream_length_seconds":120,"max_total_webcam_stream_time_per_time_window_seconds":null,` +
		`"webcam_stream_time_window":3600}}`
	if string(b) != want {
		t.Errorf("Info JSON\n got %s\nwant %s", b, want)
	}
	var back Info
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(&back, wantInfo()) {
		t.Errorf("round trip: %#v", back)
	}

	g := GadgetStatus{State: GadgetPausedDueToFailure, Status: "Failure", StatusColor: ColorRed, Rating: 1}
	b, _ = json.Marshal(g)
	if want := `{"state":"PausedDueToFailure","status":"Failure","status_color":"red","rating":1}`; string(b) != want {
		t.Errorf("GadgetStatus JSON %s, want %s", b, want)
	}
	var gb GadgetStatus
	if err := json.Unmarshal(b, &gb); err != nil || gb != g {
		t.Errorf("GadgetStatus round trip %#v, %v", gb, err)
	}
}

func TestInfoToleratesMissingAndNullFields(t *testing.T) {
	for _, body := range []string{
		`{"PrinterName":"p","PrinterLocalIp":null,"IsOnline":false}`,
		wrap(`{"printername":"p","PrinterLocalIp":null,"IsOnline":false,"PrinterLimits":null,"LastConnectionTimeUtc":null}`),
	} {
		f := newFakeAPI(t, func(w http.ResponseWriter, r *http.Request, n int) { reply(w, 200, body) })
		in, err := f.client(Options{}).Info(context.Background(), testToken)
		if err != nil {
			t.Fatalf("%s: %v", body, err)
		}
		if in.PrinterName != "p" || in.PrinterLocalIP != "" || in.IsOnline || !in.LastConnection.IsZero() || in.Limits != (Limits{}) {
			t.Errorf("%s: got %#v", body, in)
		}
	}
}

func TestTestWebhookFieldNames(t *testing.T) {
	cases := []struct {
		body string
		want int
	}{
		{`{"StatusCode":500}`, 500},
		{wrap(`{"statusCode":404}`), 404},
		{`{"HttpStatusCode":"200"}`, 200},
		{wrap(`{"ResponseCode":201}`), 201},
		{wrap(`204`), 204},
		{wrap(`{"Something":"else"}`), 0},
		{wrap(`null`), 0},
		{``, 0},
	}
	for _, c := range cases {
		f := newFakeAPI(t, func(w http.ResponseWriter, r *http.Request, n int) { reply(w, 200, c.body) })
		res, err := f.client(Options{}).TestWebhook(context.Background(), testToken)
		if err != nil {
			t.Fatalf("%s: %v", c.body, err)
		}
		if res.StatusCode != c.want || res.OK() != (c.want == 200) {
			t.Errorf("%s: StatusCode %d, want %d", c.body, res.StatusCode, c.want)
		}
	}
}

func TestUnexpectedSuccessBodies(t *testing.T) {
	for _, body := range []string{`<html>oops</html>`, wrap(`null`), `[1,2]`, ``, wrap(`"text"`)} {
		f := newFakeAPI(t, func(w http.ResponseWriter, r *http.Request, n int) { reply(w, 200, body) })
		_, err := f.client(Options{}).Info(context.Background(), testToken)
		if !errors.Is(err, ErrUnexpectedResponse) {
			t.Errorf("body %q: err %v, want ErrUnexpectedResponse", body, err)
		}
	}
}
