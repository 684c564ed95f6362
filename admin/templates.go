package admin

import "html/template"

// The admin pages: plain HTML forms, no script. html/template escapes every value; the views they render are
// built from credstore.PublicRecord, the health snapshot and the traffic counters, never from a Record, so no
// credential can reach a page.

const adminStyle = `body{font-family:system-ui,sans-serif;margin:1.5rem auto;max-width:72rem;padding:0 1rem;line-height:1.4;color:#1a1a1a}
h1{font-size:1.5rem;margin-bottom:.2rem}h2{font-size:1.15rem;margin-top:1.8rem}
.sub{color:#555;margin-top:0}
.card{border:1px solid #ccc;border-radius:6px;padding:.8rem 1rem;margin:1rem 0}
.card h3{margin:.1rem 0 .5rem;font-size:1.1rem}
table.kv{border-collapse:collapse}table.kv th{text-align:left;font-weight:600;padding:.15rem 1rem .15rem 0;vertical-align:top;white-space:nowrap}
table.kv td{padding:.15rem 0}
.state{display:inline-block;padding:.05rem .5rem;border-radius:4px;font-weight:600}
.online{background:#d7f5dc;color:#0b5a1c}.printer_offline,.unknown{background:#eee;color:#333}
.no_supporter_perks{background:#fff1c2;color:#6b4d00}.needs_relink,.down{background:#ffd9d6;color:#8a1208}
form.inline{display:inline-block;margin:.4rem .6rem 0 0}
button{padding:.25rem .7rem}
.err{color:#8a1208}.note{color:#555;font-size:.9rem}
input[type=text]{width:14rem}input[type=number]{width:6rem}
`

var pages = template.Must(template.New("layout").Parse(`{{define "head"}}<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<title>oeproxy{{if .Title}}: {{.Title}}{{end}}</title>
<style>` + adminStyle + `</style>
</head><body>{{end}}
{{define "foot"}}</body></html>
{{end}}

{{define "index"}}{{template "head" .}}
<h1>oeproxy</h1>
<p class="sub">{{len .Printers}} printer(s) · started {{.Started}} · <a href="/metrics">metrics</a> · <a href="/readyz">readiness</a></p>

{{if .Recent}}<h2>Recent actions</h2><ul id="recent">{{range .Recent}}
<li>{{.At}}: {{if .Err}}<span class="err">{{.Text}}: {{.Err}}</span>{{else}}{{.Text}}{{if .Link}} <a href="{{.Link}}">{{.Link}}</a>{{end}}{{end}}</li>{{end}}
</ul>{{end}}
{{if .Pending}}<h2>Waiting for the OctoEverywhere portal</h2><ul>{{range .Pending}}
<li>connect started {{.}}: finish it in the portal tab (the setup expires after 15 minutes)</li>{{end}}
</ul>{{end}}

<h2>Printers</h2>
{{range .Damaged}}<p class="err damaged">{{.}}</p>
{{end}}{{if not .Printers}}<p id="no-printers">No printer is connected yet. Connect one below.</p>{{end}}
{{range .Printers}}<div class="card printer" id="printer-{{.Name}}">
<h3>{{.Name}}{{if .PrinterName}} · {{.PrinterName}}{{end}}</h3>
<table class="kv">
<tr><th>Local URL</th><td>{{if .Served}}<a href="{{.LocalURL}}">{{.LocalURL}}</a>{{else}}{{.LocalURL}} <span class="state down">not served</span> <span class="note">{{if .NotServed}}{{.NotServed}} (oeproxy keeps trying){{else}}(see the log){{end}}</span>{{end}}</td></tr>
<tr><th>Route</th><td>{{.Route}} · {{.RelayHost}}</td></tr>
<tr><th>State</th><td><span class="state {{.State}}">{{.State}}</span>{{if .StateSince}} since {{.StateSince}}{{end}}{{if .CheckedAt}} <span class="note">(checked {{.CheckedAt}})</span>{{end}}{{if .Action}}<br><span class="note">{{.Action}}</span>{{end}}</td></tr>
<tr><th>Last error</th><td>{{with .LastError}}{{if .Code}}{{.Code}}: {{end}}{{.Meaning}} <span class="note">({{.Source}}, {{.At.Format "2006-01-02 15:04:05 MST"}})</span>{{else}}none{{end}}</td></tr>
<tr><th>Supporter</th><td>{{.Supporter}}</td></tr>
<tr><th>Limits</th><td>{{if .Limits}}upload {{.Limits.Upload}} · download {{.Limits.Download}} · webcam stream {{.Limits.Stream}}{{else}}unknown until OctoEverywhere answered once{{end}}</td></tr>
<tr><th>Since start</th><td>{{.Traffic.Requests}} requests · {{.Traffic.In}} in · {{.Traffic.Out}} out</td></tr>
<tr><th>Open now</th><td>{{.Traffic.WebSockets}} WebSocket(s) · {{.Traffic.Streams}} webcam/event stream(s) · {{.Traffic.Uploads}} upload(s)</td></tr>
<tr><th>Webcams</th><td>{{.Traffic.CamUpstreams}} shared stream(s) to the printer for {{.Traffic.CamViewers}} viewer(s) · {{.Traffic.CamDropped}} frame(s) skipped for slow viewers · {{.Traffic.CamContinued}} stream(s) continued after a relay cut</td></tr>
</table>
<form class="inline" method="post" action="/printers/{{.Name}}/livelink"><input type="hidden" name="csrf" value="{{$.CSRF}}">
<label>Live Link for <input type="number" name="hours" min="1" max="17520" value="24"> hours</label>
<label><input type="checkbox" name="until_print_done" value="1"> or until the print is done</label>
<button type="submit">Create Live Link</button></form>
<form class="inline" method="post" action="/printers/{{.Name}}/gadget"><input type="hidden" name="csrf" value="{{$.CSRF}}">
<button type="submit">Gadget status</button></form>
<form class="inline" method="get" action="/printers/{{.Name}}/remove"><button type="submit">Remove…</button></form>
</div>
{{end}}

{{if .Uploads}}<h2>Uploads answered once stored</h2>
<p class="note">upload.answer_when_stored: these slicers were told their upload succeeded once oeproxy had it on disk; here is what the printer made of it (newest first).</p>
<table id="uploads"><tr><th>stored</th><th>printer</th><th>file</th><th>size</th><th>outcome</th></tr>{{range .Uploads}}
<tr><td>{{.Stored}}</td><td>{{.Printer}}</td><td>{{.File}}</td><td>{{.Size}}</td><td><span class="state {{.State}}">{{.State}}</span>{{if .Status}} ({{.Status}}){{end}}{{if .Error}}<br><span class="{{if .Bad}}err{{else}}note{{end}}">{{.Error}}</span>{{end}}{{if .Kept}}<br><span class="note">kept at {{.Kept}}: send it again</span>{{end}}</td></tr>{{end}}
</table>{{end}}

<h2>Connect a printer</h2>
<form method="post" action="/connect" id="connect"><input type="hidden" name="csrf" value="{{.CSRF}}">
<p><label>Local name (optional) <input type="text" name="name" pattern="[a-z0-9-]*" placeholder="e.g. mk4"></label>
<label>Port (optional) <input type="number" name="port" min="1" max="65535" placeholder="next free"></label></p>
<p><label>Printer's LAN address (optional, preselects it in the portal) <input type="text" name="printer_url" placeholder="http://192.168.1.20"></label></p>
<button type="submit">Connect a printer through OctoEverywhere…</button>
<p class="note">Opens the OctoEverywhere App Connection portal; after you approve, it returns here and the printer gets its own local port.</p>
</form>
{{template "foot" .}}{{end}}

{{define "confirm"}}{{template "head" .}}
<h1>Remove {{.Name}}?</h1>
<p>oeproxy forgets this printer's App Connection and closes its local port {{.LocalURL}}. Slicers pointed at it stop working.</p>
<p>The App Connection itself stays valid at OctoEverywhere until you revoke it on the OctoEverywhere website.</p>
<form method="post" action="/printers/{{.Name}}/remove"><input type="hidden" name="csrf" value="{{.CSRF}}">
<button type="submit">Remove {{.Name}}</button> <a href="/">Cancel</a></form>
{{template "foot" .}}{{end}}

{{define "message"}}{{template "head" .}}
<h1>{{.Title}}</h1>
{{range .Lines}}<p>{{.}}</p>
{{end}}{{range .Links}}<p><a href="{{.}}" rel="noreferrer noopener">{{.}}</a></p>
{{end}}{{if .Error}}<p class="err">{{.Error}}</p>
{{end}}<p><a href="/">Back to the printers</a></p>
{{template "foot" .}}{{end}}
`))
