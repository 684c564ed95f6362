package portalflow

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"html/template"
	"net/http"
)

// page is what the callback shows the browser. Nothing in it comes from the completion except the printer
// name (escaped by html/template) and the secret-free error text: a page never echoes a secret.
type page struct {
	Status   int
	Title    string
	Lines    []string
	Bullets  []string
	Link     string
	LinkText string
	Script   template.JS // only the fixed bridge script
}

// bridgeScript moves a completion that arrived in the URL fragment (which browsers never send to a server)
// into the query, so the callback can read it. It is the only script, allowed by its hash in the CSP.
const bridgeScript = `(function(){var h=location.hash.slice(1);if(h&&!location.search){location.replace(location.pathname+"?"+h);}})();`

var csp = func() string {
	sum := sha256.Sum256([]byte(bridgeScript))
	return "default-src 'none'; style-src 'unsafe-inline'; script-src 'sha256-" +
		base64.StdEncoding.EncodeToString(sum[:]) + "'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
}()

var pageTmpl = template.Must(template.New("page").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>oeproxy: {{.Title}}</title>
<style>body{font-family:system-ui,sans-serif;max-width:40rem;margin:3rem auto;padding:0 1rem;line-height:1.5}h1{font-size:1.4rem}</style>
</head><body>
<h1>{{.Title}}</h1>
{{range .Lines}}<p>{{.}}</p>
{{end}}{{if .Bullets}}<ul>{{range .Bullets}}<li>{{.}}</li>{{end}}</ul>
{{end}}{{if .Link}}<p><a href="{{.Link}}" rel="noreferrer noopener">{{.LinkText}}</a></p>
{{end}}{{if .Script}}<script>{{.Script}}</script>
{{end}}</body></html>
`))

var (
	pageNotFound = page{Status: http.StatusNotFound, Title: "Not found",
		Lines: []string{"This address is not an oeproxy portal callback."}}
	pageMethod = page{Status: http.StatusMethodNotAllowed, Title: "Method not allowed",
		Lines: []string{"The portal callback only answers GET."}}
	pageNoFlow = page{Status: http.StatusNotFound, Title: "No connection setup in progress",
		Lines: []string{"oeproxy is not waiting for the OctoEverywhere portal. Nothing was stored.",
			"To connect a printer, run: oeproxy connect"}}
	pageBadState = page{Status: http.StatusNotFound, Title: "This is not the address of the setup in progress",
		Lines: []string{"The address does not match the connection setup oeproxy is waiting for (it may come from an " +
			"older attempt, or from someone else). Nothing was stored, and oeproxy keeps waiting.",
			"If you started a new setup, finish it in the tab oeproxy opened, or run oeproxy connect again."}}
	pageReplay = page{Status: http.StatusConflict, Title: "This setup address was already used",
		Lines: []string{"oeproxy already took the portal's answer for this setup; this visit changed nothing.",
			"To connect another printer, run oeproxy connect again."}}
	pageExpired = page{Status: http.StatusGone, Title: "This setup has expired",
		Lines: []string{"More than 15 minutes passed since oeproxy connect started, so this answer was refused and " +
			"nothing was stored.", "Run oeproxy connect again. (The App Connection the portal may have created can be " +
			"revoked on the OctoEverywhere website.)"}}
	pageBridge = page{Status: http.StatusOK, Title: "Waiting for OctoEverywhere's answer",
		Lines: []string{"This address carries no answer from the portal yet.",
			"If this page does not change, copy the whole address from the address bar and run " +
				"oeproxy connect --completion-url - and paste it there, or run oeproxy connect again."},
		Script: template.JS(bridgeScript)}
)

// connectedPage is shown once the completion is stored (stored false: the flow has no Keep, and the caller
// stores it after Wait).
func connectedPage(printerName, line string, stored bool) page {
	what := "the App Connection"
	if printerName != "" {
		what += " for " + printerName
	}
	lines := []string{"oeproxy received " + what + " and is storing it encrypted."}
	if stored {
		lines[0] = "oeproxy stored " + what + ", encrypted."
	}
	if line != "" {
		lines = append(lines, line)
	} else {
		lines = append(lines, "Go back to oeproxy to see the printer's local address.")
	}
	return page{Status: http.StatusOK, Title: "Connected — you can close this tab", Lines: lines}
}

// notKeptPage is shown when the completion was valid but could not be stored: the answer is not lost (the
// caller keeps it), and the terminal or admin page says how to finish.
func notKeptPage(err error) page {
	return page{Status: http.StatusInternalServerError, Title: "Received, but not stored yet",
		Lines: []string{"oeproxy received the App Connection but could not store it: " + err.Error(),
			"The answer is not lost: go back to oeproxy, which says how to finish without running the portal again."}}
}

func declinedPage(supporterURL string) page {
	return page{Status: http.StatusOK, Title: "OctoEverywhere did not create the App Connection",
		Lines: []string{"The portal finished without success, so nothing was stored. The most likely reasons:"},
		Bullets: []string{
			"the printer owner's OctoEverywhere account has no Supporter Perks, which App Connections need;",
			"the setup was cancelled in the portal.",
		},
		Link: supporterURL, LinkText: "About OctoEverywhere Supporter Perks (opens OctoEverywhere)"}
}

func invalidPage(err error) page {
	return page{Status: http.StatusBadRequest, Title: "OctoEverywhere's answer was not usable",
		Lines: []string{err.Error(), "Nothing was stored and oeproxy is still waiting. If the portal does not " +
			"offer to try again, run oeproxy connect again."}}
}

func writePage(w http.ResponseWriter, p page) {
	var buf bytes.Buffer
	if err := pageTmpl.Execute(&buf, p); err != nil {
		http.Error(w, "internal error rendering the page", http.StatusInternalServerError)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Content-Security-Policy", csp)
	h.Set("Cache-Control", "no-store")
	// The callback URL carries the state and the secrets: no page may send it to another site in Referer.
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	w.WriteHeader(p.Status)
	_, _ = w.Write(buf.Bytes())
}
