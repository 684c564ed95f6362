package proxy

import (
	"context"
	"net/http"
	"net/http/httputil"

	"github.com/oeproxy/oeproxy/webcam"
)

// camRequest marks a request that may open a webcam stream: its relay request must outlive the viewer, since
// other viewers may join the stream, so it gets a context of its own that ends with the viewer only if the
// hub does not adopt the answer.
type camRequest struct {
	key       string
	clientCtx context.Context
	cancel    context.CancelFunc // ends the relay request
	stop      func() bool        // stops ending it with the viewer
	done      func()             // lets the viewers that waited for this request's answer go on
}

type camKey struct{}

// mayStream is a cheap guess at whether a GET asks for a webcam stream; only these are shared. A stream at a
// path that fits none of these words is relayed as before, one relay stream per viewer.
func mayStream(r *http.Request) bool {
	if r.Method != http.MethodGet {
		return false
	}
	// Path and query are searched apart and without lower-casing a copy: this runs for every GET while the daemon's
	// webcam hub is on, and the copy was two allocations per request. No word holds '?', so none could have
	// matched across the two.
	for _, w := range streamWords {
		if containsFold(r.URL.Path, w) || containsFold(r.URL.RawQuery, w) {
			return true
		}
	}
	return false
}

var streamWords = []string{"stream", "webcam", "video", "mjpg", "mjpeg", "cam"}

// containsFold reports whether s contains word (lower-case ASCII) in any ASCII case.
func containsFold(s, word string) bool {
	for i := 0; i+len(word) <= len(s); i++ {
		j := 0
		for j < len(word) {
			c := s[i+j]
			if 'A' <= c && c <= 'Z' {
				c += 'a' - 'A'
			}
			if c != word[j] {
				break
			}
			j++
		}
		if j == len(word) {
			return true
		}
	}
	return false
}

// serveWebcam answers a snapshot from a running shared stream or joins one, and reports whether it did.
// Otherwise a request that may open a stream is marked for rewrite and modifyResponse. The request's context
// is returned changed when it was marked.
func (h *Handler) serveWebcam(w http.ResponseWriter, r *http.Request) (*http.Request, bool) {
	if h.cams == nil || (r.Method != http.MethodGet && r.Method != http.MethodHead) {
		return r, false
	}
	if h.cams.Has() {
		if key, ok := webcam.SnapshotKey(r); ok && h.cams.ServeSnapshot(w, r, key) {
			return r, true
		}
	}
	if !mayStream(r) {
		return r, false
	}
	key := webcam.Key(r)
	served, done := h.cams.JoinOrClaim(w, r, key)
	if served || done == nil {
		return r, served // done nil: another viewer's request was no stream, so this one goes up unshared
	}
	c := &camRequest{key: key, clientCtx: r.Context(), done: done}
	return r.WithContext(context.WithValue(r.Context(), camKey{}, c)), false
}

// camDone lets waiting viewers go on if the marked request ends without its answer being adopted (an error,
// no stream).
func camDone(r *http.Request) {
	if c, ok := r.Context().Value(camKey{}).(*camRequest); ok {
		c.done()
	}
}

// detachCam gives a marked request's relay request a context that the hub can keep alive.
func detachCam(pr *httputil.ProxyRequest) {
	c, ok := pr.In.Context().Value(camKey{}).(*camRequest)
	if !ok {
		return
	}
	if c.stop != nil {
		// A LAN try that fell back to the relay detached it already: let that one go.
		c.stop()
		c.cancel()
	}
	ctx, cancel := context.WithCancel(context.WithoutCancel(pr.In.Context()))
	c.cancel = cancel
	c.stop = context.AfterFunc(pr.In.Context(), cancel)
	pr.Out = pr.Out.WithContext(ctx)
}

// adoptCam hands an MJPEG answer to a marked request to the hub, which continues it with the same relay
// request (credential included) after a cut.
func (h *Handler) adoptCam(resp *http.Response) { h.adoptCamVia(resp, h.opts.Transport) }

// adoptCamVia is adoptCam for an answer that came through rt (the relay's transport or the LAN's): a stream is
// continued on the route it started on.
func (h *Handler) adoptCamVia(resp *http.Response, rt http.RoundTripper) {
	c, ok := resp.Request.Context().Value(camKey{}).(*camRequest)
	if !ok || c.cancel == nil {
		return
	}
	out := resp.Request
	reopen := func(ctx context.Context) (*http.Response, error) {
		return rt.RoundTrip(out.Clone(ctx))
	}
	if h.cams.Adopt(c.clientCtx, c.key, resp, reopen, c.cancel) {
		c.stop()
	}
	c.done()
}
