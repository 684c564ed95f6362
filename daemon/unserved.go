package daemon

import (
	"errors"
	"syscall"
	"time"

	"go.uber.org/zap"

	"github.com/oeproxy/oeproxy/credstore"
)

// A printer whose port is busy when it should start (another program holds it, a previous daemon has not let go)
// is kept, reported as not served with the reason, and tried again with a growing pause, and at once on SIGHUP,
// until the port is free, the printer is removed or changed, or the daemon stops.

// retryFirst and retryMax bound the pause between two attempts at a busy port.
var retryFirst, retryMax = time.Second, time.Minute

type unserved struct {
	reason string
	stop   chan struct{} // closed when the retry loop must end (removed, changed, served, shutdown)
}

// servePrinter starts rec's listener; when that fails it records why and, for a busy port, keeps trying.
func (d *Daemon) servePrinter(rec credstore.Record) error {
	err := d.startPrinter(rec)
	d.mu.Lock()
	defer d.mu.Unlock()
	d.forgetUnservedLocked(rec.Name)
	if err == nil || d.closing {
		return err
	}
	u := &unserved{reason: err.Error(), stop: make(chan struct{})}
	d.unserved[rec.Name] = u
	if errors.Is(err, syscall.EADDRINUSE) {
		d.wg.Add(1)
		go d.retryPrinter(rec, u)
	}
	return err
}

func (d *Daemon) forgetUnservedLocked(name string) {
	if u := d.unserved[name]; u != nil {
		close(u.stop)
		delete(d.unserved, name)
	}
}

func (d *Daemon) retryPrinter(rec credstore.Record, u *unserved) {
	defer d.wg.Done()
	pause := retryFirst
	for {
		d.mu.Lock()
		now := d.retryNow
		d.mu.Unlock()
		t := time.NewTimer(pause)
		select {
		case <-u.stop:
			t.Stop()
			return
		case <-d.quit:
			t.Stop()
			return
		case <-now:
			t.Stop()
		case <-t.C:
		}
		err := d.startPrinter(rec)
		d.mu.Lock()
		if d.unserved[rec.Name] != u { // removed or changed meanwhile: its listener is not ours to keep
			d.mu.Unlock()
			if err == nil {
				d.stopPrinter(rec)
			}
			return
		}
		if err == nil {
			delete(d.unserved, rec.Name)
			d.mu.Unlock()
			d.log.Info("printer port free again: serving", zap.String("printer", rec.Name))
			return
		}
		u.reason = err.Error()
		d.mu.Unlock()
		pause = min(2*pause, retryMax)
	}
}

// retryUnserved makes every waiting printer try its port now (SIGHUP).
func (d *Daemon) retryUnserved() {
	d.mu.Lock()
	close(d.retryNow)
	d.retryNow = make(chan struct{})
	d.mu.Unlock()
}

// NotServed says why a stored printer has no listener ("" when it is served, or unknown to the daemon).
func (d *Daemon) NotServed(name string) string {
	d.mu.Lock()
	defer d.mu.Unlock()
	if u := d.unserved[name]; u != nil {
		return u.reason
	}
	return ""
}
