package appapi

import (
	"context"
	"fmt"
	"net/http"

	"github.com/oeproxy/oeproxy/internal/oe"
)

// LiveLinkRequest says how long a Live Link lives: Hours (1..17520; 0 means 24), or until the current print
// ends (UntilPrintDone; Hours must then be 0). With UntilPrintDone and no print running, the call fails with 613.
type LiveLinkRequest struct {
	Hours          int
	UntilPrintDone bool
}

// LiveLink is a created Live Link: a public page showing the printer's webcam and print progress.
type LiveLink struct {
	LiveID   string `json:"live_id"`
	URL      string `json:"url"`       // https://octoeverywhere.com/live/<id>
	ShortURL string `json:"short_url"` // https://oe.ink/l/<id>
}

type wireLiveLinkRequest struct {
	ExpirationHours               int  `json:",omitempty"`
	EndWhenCurrentPrintIsComplete bool `json:",omitempty"`
}

type wireLiveLink struct {
	LiveId   string
	Url      string
	ShortUrl string
}

func decodeLiveLink(payload []byte) (*LiveLink, error) {
	var w wireLiveLink
	if err := decodeObject(payload, &w); err != nil {
		return nil, err
	}
	if w.Url == "" && w.ShortUrl == "" {
		return nil, fmt.Errorf("%w: no Url or ShortUrl in the answer", ErrUnexpectedResponse)
	}
	return &LiveLink{LiveID: w.LiveId, URL: w.Url, ShortURL: w.ShortUrl}, nil
}

// CreateLiveLink creates a Live Link (POST /api/live/createfromappconnection). It is never retried: a retry could
// create a second link. errors.Is(err, ErrNoActivePrint613) means UntilPrintDone was asked with no print running.
func (c *Client) CreateLiveLink(ctx context.Context, token string, r LiveLinkRequest) (*LiveLink, error) {
	body := wireLiveLinkRequest{ExpirationHours: r.Hours, EndWhenCurrentPrintIsComplete: r.UntilPrintDone}
	switch {
	case r.UntilPrintDone && r.Hours != 0:
		return nil, fmt.Errorf("%w: a Live Link lasts either a number of hours or until the print is done, not both", ErrInvalidArgument)
	case r.UntilPrintDone:
	case r.Hours == 0:
		body.ExpirationHours = oe.DefaultLiveLinkHours
	default:
		if err := oe.CheckLiveLinkHours(r.Hours); err != nil {
			return nil, err
		}
	}
	payload, err := c.do(ctx, call{name: "create Live Link", method: http.MethodPost, path: "/api/live/createfromappconnection", token: token, body: body})
	if err != nil {
		return nil, err
	}
	l, err := decodeLiveLink(payload)
	if err != nil {
		return nil, fmt.Errorf("OctoEverywhere create Live Link: %w", err)
	}
	return l, nil
}
