package daemon

import (
	"fmt"
	"net/http"
	"slices"
	"strings"

	"github.com/oeproxy/oeproxy/admin"
	"github.com/oeproxy/oeproxy/config"
	"github.com/oeproxy/oeproxy/proxy"
	"github.com/oeproxy/oeproxy/route"
)

// adminPage builds the admin listener's handler (package admin) on the daemon's control and live views; Run
// calls it once, after the admin listener is bound, and closes it at shutdown.
func (d *Daemon) adminPage() http.Handler {
	d.admin = admin.New(admin.Options{Control: d.control, Live: adminLive{d}, Addr: d.adminAddr,
		Metrics: d.metrics.Handler(), Ready: http.HandlerFunc(d.readyz), Log: d.log})
	return d.admin
}

// AdminLoginURL is the admin page's current one-time login URL ("" before Run); `oeproxy admin` reads the same
// URL from the data directory.
func (d *Daemon) AdminLoginURL() string { return d.admin.LoginURL() }

// adminLive is the daemon's side of admin.Live: what the page shows that control.Control does not carry.
type adminLive struct{ d *Daemon }

func (l adminLive) Config() config.Config                        { return l.d.cfg() }
func (l adminLive) RouteStatus(name string) (route.Status, bool) { return l.d.routeStatus(name) }
func (l adminLive) Traffic(name string) admin.Traffic {
	return l.d.metrics.Traffic(name)
}
func (l adminLive) Uploads() []proxy.UploadRecord { return l.d.Uploads() }

// readyz answers 200 when every stored printer's listener is up, else 503 naming those that are not.
func (d *Daemon) readyz(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	_, damaged, err := d.o.Store.Scan()
	if err != nil {
		w.WriteHeader(http.StatusServiceUnavailable)
		fmt.Fprintf(w, "not ready: the store cannot be read: %v\n", err)
		return
	}
	var up, down []string
	for _, bad := range damaged {
		down = append(down, bad.Name+" (record cannot be read)")
	}
	for _, s := range d.printerStates() {
		if s.served {
			up = append(up, s.name)
		} else {
			down = append(down, s.name)
		}
	}
	if len(down) > 0 {
		slices.Sort(down)
		w.WriteHeader(http.StatusServiceUnavailable)
		fmt.Fprintf(w, "not ready: %d printer listener(s) not up: %s (see the log: port busy?)\n", len(down), strings.Join(down, ", "))
		return
	}
	fmt.Fprintf(w, "ready: %d printer listener(s) up\n", len(up))
}
