package printer

import (
	"html/template"
	"net/http"
)

// pageData fills pageTemplate. Kind selects how the script reads the counter:
// "octoprint" speaks SockJS (framed transport, as OctoPrint's own UI does), "moonraker"
// speaks Moonraker's JSON-RPC.
type pageData struct {
	Title, Kind, Software string
}

// The page uses only relative URLs and builds the WebSocket URL from location, so it works
// when opened through a proxy on any host:port, over http or https.
var pageTemplate = template.Must(template.New("page").Parse(`<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{.Title}} · {{.Software}}</title>
<style>
body { font-family: sans-serif; margin: 1.5em; background: #f4f5f7; color: #222; }
.card { background: #fff; border-radius: 6px; padding: 1em; display: inline-block; box-shadow: 0 1px 3px #0002; }
#webcam { display: block; width: 320px; height: 240px; background: #000; }
.readout { font-size: 1.4em; margin-top: .6em; }
#ws-status { font-weight: bold; }
</style>
</head>
<body>
<div class="card">
<h1>{{.Title}}</h1>
<p>{{.Software}} (oesim simulated printer)</p>
<img id="webcam" src="/webcam/?action=stream" alt="webcam stream">
<div class="readout">WebSocket: <span id="ws-status">connecting</span>, value <span id="ws-value">-</span></div>
</div>
<script>
(function () {
  "use strict";
  var kind = {{.Kind}};
  var statusEl = document.getElementById("ws-status");
  var valueEl = document.getElementById("ws-value");
  var scheme = location.protocol === "https:" ? "wss:" : "ws:";
  function randomID(n) {
    var s = "", chars = "abcdefghijklmnopqrstuvwxyz0123456789";
    for (var i = 0; i < n; i++) { s += chars.charAt(Math.floor(Math.random() * chars.length)); }
    return s;
  }
  function path() {
    if (kind === "octoprint") { return "/sockjs/" + Math.floor(Math.random() * 1000) + "/" + randomID(8) + "/websocket"; }
    return "/websocket";
  }
  function show(counter) {
    if (typeof counter === "number") { valueEl.textContent = String(counter); }
  }
  function onOctoPrintFrame(data) {
    // SockJS frames: "o" open, "h" heartbeat, "a[...]" messages, "c[...]" close.
    if (data.charAt(0) !== "a") { return; }
    var msgs = JSON.parse(data.slice(1));
    for (var i = 0; i < msgs.length; i++) {
      var m = typeof msgs[i] === "string" ? JSON.parse(msgs[i]) : msgs[i];
      if (m && m.current && m.current.oesim) { show(m.current.oesim.counter); }
    }
  }
  function onMoonrakerMessage(data) {
    var m = JSON.parse(data);
    if (m.method === "notify_status_update" && m.params && m.params[0] && m.params[0].oesim) {
      show(m.params[0].oesim.counter);
    }
  }
  function connect() {
    statusEl.textContent = "connecting";
    var ws = new WebSocket(scheme + "//" + location.host + path());
    ws.onopen = function () {
      statusEl.textContent = "connected";
      if (kind === "moonraker") {
        ws.send(JSON.stringify({jsonrpc: "2.0", method: "printer.objects.subscribe",
          params: {objects: {print_stats: null, extruder: null}}, id: 1}));
      }
    };
    ws.onmessage = function (ev) {
      try {
        if (kind === "octoprint") { onOctoPrintFrame(ev.data); } else { onMoonrakerMessage(ev.data); }
      } catch (e) { /* a malformed message must not stop the readout */ }
    };
    ws.onclose = function () {
      statusEl.textContent = "disconnected";
      setTimeout(connect, 2000);
    };
  }
  connect();
})();
</script>
</body>
</html>
`))

func servePage(w http.ResponseWriter, r *http.Request, d pageData) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-cache")
	_ = pageTemplate.Execute(w, d)
}
