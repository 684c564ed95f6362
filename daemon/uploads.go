package daemon

import (
	"context"
	"errors"
	"os"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/oeproxy/oeproxy/config"
	"github.com/oeproxy/oeproxy/proxy"
)

// openUploads opens the upload spool (upload.answer_when_stored, proxy.UploadSpool) before any printer is served.
// With the option off it is still opened when its directory exists, so that uploads a previous run stored and did
// not deliver are reported now (log, metrics) instead of lying there unseen; the handlers then get no spool.
func (d *Daemon) openUploads(cfg config.Upload) error {
	dir := cfg.SpoolDir
	if dir == "" {
		return nil
	}
	if !cfg.AnswerWhenStored {
		if _, err := os.Stat(dir); errors.Is(err, os.ErrNotExist) {
			return nil
		}
	}
	outcomes := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "oeproxy_spooled_uploads_total",
		Help: "Uploads answered 202 once stored (upload.answer_when_stored), by printer and outcome: delivered, failed (the printer or relay refused it; the file is kept), interrupted (oeproxy stopped first; reported at the next start).",
	}, []string{"printer", "outcome"})
	if err := d.metrics.reg.Register(outcomes); err != nil {
		return err
	}
	sp, err := proxy.NewUploadSpool(proxy.UploadSpoolOptions{Dir: dir, Logger: d.log, OnChange: func(r proxy.UploadRecord) {
		switch r.State {
		case proxy.UploadDelivered, proxy.UploadFailed, proxy.UploadInterrupted:
			outcomes.WithLabelValues(r.Printer, string(r.State)).Inc()
		}
	}})
	if err != nil {
		return err
	}
	d.spool = sp
	if cfg.AnswerWhenStored {
		d.uploads = sp
		d.log.Warn("upload.answer_when_stored is on: slicers are told an upload succeeded once oeproxy has it on disk, "+
			"before the printer has it; the outcome is in this log and the metrics", zap.String("upload.spool_dir", dir))
	}
	return nil
}

// closeUploads lets the uploads being passed on finish within ctx (shutdown_grace); the rest stay on disk.
func (d *Daemon) closeUploads(ctx context.Context) {
	if d.spool != nil {
		d.spool.Close(ctx)
	}
}

// Uploads returns the latest spooled uploads (nil without a spool), oldest first.
func (d *Daemon) Uploads() []proxy.UploadRecord {
	if d.spool == nil {
		return nil
	}
	return d.spool.Records()
}

// uploadsOf returns the latest spooled uploads of one printer, oldest first.
func (d *Daemon) uploadsOf(name string) []proxy.UploadRecord {
	var out []proxy.UploadRecord
	for _, r := range d.Uploads() {
		if r.Printer == name {
			out = append(out, r)
		}
	}
	return out
}
