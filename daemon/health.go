package daemon

import (
	"context"
	"sync"

	"github.com/oeproxy/oeproxy/health"
)

// newHealth builds a printer's Health from the daemon's template.
func (d *Daemon) newHealth(name string) *health.Health {
	o := d.o.Health
	o.Name, o.API, o.Store = name, d.o.API, d.o.Store
	o.Logger = d.log.Named("health")
	return health.New(o)
}

// newRenewer builds a printer's webhook Renewer; it looks as often as the health checks poll, with the
// template's clock.
func (d *Daemon) newRenewer(name string) *health.Renewer {
	return health.NewRenewer(health.RenewOptions{Name: name, API: d.o.API, Store: d.o.Store,
		Logger: d.log.Named("health"), Interval: d.o.Health.Interval, Now: d.o.Health.Now})
}

// runHealth starts h's poller and the printer's webhook renewal; the returned function stops both and waits
// until they have returned.
func (d *Daemon) runHealth(h *health.Health, rn *health.Renewer) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { h.Run(ctx) })
	wg.Go(func() { rn.Run(ctx) })
	return func() {
		cancel()
		wg.Wait()
	}
}

// healthOf returns the Health of a served printer (nil when it is not served).
func (d *Daemon) healthOf(name string) *health.Health {
	d.mu.Lock()
	defer d.mu.Unlock()
	if p := d.printers[name]; p != nil {
		return p.health
	}
	return nil
}
