package portalflow_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"time"

	"github.com/oeproxy/oeproxy/portalflow"
)

func ExampleParseCompletion() {
	// What the user pastes for `oeproxy connect --completion-url`: the address the portal ended on.
	raw := ` "https://octoeverywhere.com/appportal/v1/complete?success=true&id=c1` +
		`&url=https%3A%2F%2Fapp-abc123.octoeverywhere.com&appApiToken=tok&printername=Voron` +
		`&authbasichttpuser=user&authbasichttppassword=pass&authBearerToken=bearer" `
	c, err := portalflow.ParseCompletion(raw, "octoeverywhere.com")
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(c.URL, c.PrinterName, c.HasBasic(), c.HasBearer())
	fmt.Println(c) // secrets are never printed

	_, err = portalflow.ParseCompletion("https://octoeverywhere.com/appportal/v1/complete?success=false", "")
	fmt.Println(errors.Is(err, portalflow.ErrPortalDeclined))
	// Output:
	// https://app-abc123.octoeverywhere.com Voron true true
	// Completion{ID:"c1" URL:"https://app-abc123.octoeverywhere.com" PrinterName:"Voron" UserPrinterAccessURL:"" PrinterLastKnownLocalIP:"" AppAPIToken:[redacted] BasicUser:[redacted] BasicPassword:[redacted] BearerToken:[redacted] OctoPrintAPIKey:(none)}
	// true
}

func ExampleStartURL() {
	u, err := portalflow.StartURL(portalflow.StartOptions{
		AppID:            "devtest",
		ReturnURL:        "http://127.0.0.1:41234/oeproxy/callback/STATE",
		OctoPrintKeyName: "oeproxy on desk",
	})
	fmt.Println(u, err)
	// Output:
	// https://octoeverywhere.com/appportal/v1/?appid=devtest&octoPrintApiKeyAppName=oeproxy+on+desk&returnUrl=http%3A%2F%2F127.0.0.1%3A41234%2Foeproxy%2Fcallback%2FSTATE <nil>
}

func ExampleFlow() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	flow, err := portalflow.NewFlow(portalflow.FlowOptions{AppID: "devtest", NoOctoPrintKey: true})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer flow.Close()
	portal, err := flow.Start(ctx) // open this in the browser (portalflow.OpenBrowser)
	if err != nil {
		fmt.Println(err)
		return
	}

	// Here the browser would show the portal; this example plays the portal's final redirect itself.
	u, _ := url.Parse(portal)
	callback := u.Query().Get("returnUrl") + "?success=true&id=c1&url=https%3A%2F%2Fapp-abc123.octoeverywhere.com" +
		"&appApiToken=tok&printername=Voron&authBearerToken=bearer"
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr}).Get(callback)
	if err != nil {
		fmt.Println(err)
		return
	}
	resp.Body.Close()

	c, err := flow.Wait(ctx)
	fmt.Println(resp.StatusCode, c.URL, err)
	// Output:
	// 200 https://app-abc123.octoeverywhere.com <nil>
}
