package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/oeproxy/oeproxy/control"
	"github.com/oeproxy/oeproxy/credstore"
	"github.com/oeproxy/oeproxy/portalflow"
)

// connectPrecheck refuses, before the portal opens, what would make storing its one-time answer fail: a store
// that does not open (wrong key, damaged, unsafe), a --name or --port another printer has. A --port that
// another program holds now is only a warning: serve retries it.
func (a *app) connectPrecheck(ctx context.Context, f connectFlags) error {
	ctl, done, err := a.controlCreate(ctx)
	if err != nil {
		return err
	}
	defer done()
	list, err := ctl.List(ctx)
	if err != nil {
		return err
	}
	for _, r := range list {
		if f.name != "" && r.Name == f.name {
			return fmt.Errorf("%w: printer %q exists already (port %d): choose another --name, or oeproxy remove %s first",
				credstore.ErrNameTaken, r.Name, r.Port, r.Name)
		}
		if f.port != 0 && r.Port == f.port {
			return fmt.Errorf("%w: port %d belongs to printer %q: choose another --port, or leave it out for the next free one",
				credstore.ErrPortTaken, f.port, r.Name)
		}
	}
	if f.port != 0 {
		cfg, err := a.config()
		if err != nil {
			return err
		}
		ln, err := net.Listen("tcp", net.JoinHostPort(cfg.Listen.Host, strconv.Itoa(f.port)))
		if err != nil {
			fmt.Fprintf(a.err, "warning: another program holds port %d now (%v); oeproxy serve will keep trying it, and status shows the printer as not served until it is free\n", f.port, err)
		} else {
			ln.Close()
		}
	}
	return nil
}

// added is what storing a completion gave.
type added struct {
	rec       credstore.PublicRecord
	viaDaemon bool  // stored by the running daemon, which serves it at once
	warn      error // stored, but with a problem to report (exit 1)
}

// addPrinter stores a completion through the daemon or the store. When the daemon's answer is lost (it was
// stopped half-way), it looks whether the printer was stored before it tries again: the portal's answer is
// one-time, and the user must hear what happened, not an EOF.
func (a *app) addPrinter(ctx context.Context, req control.AddRequest) (added, error) {
	ctl, done, err := a.controlCreate(ctx)
	if err != nil {
		return added{}, err
	}
	_, via := ctl.(*control.Client)
	rec, err := ctl.Add(ctx, req)
	done()
	if errors.Is(err, control.ErrNoAnswer) {
		return a.addAfterLostAnswer(ctx, req)
	}
	if err != nil && rec.Name == "" {
		return added{}, err
	}
	return added{rec: rec, viaDaemon: via, warn: err}, nil
}

// lostAnswerWait is how long addAfterLostAnswer keeps looking for a daemon or a free store.
var lostAnswerWait = 15 * time.Second

func (a *app) addAfterLostAnswer(ctx context.Context, req control.AddRequest) (added, error) {
	deadline := time.Now().Add(lostAnswerWait)
	var last error // what the last look found; every pass sets it
	for {
		ctl, done, err := a.controlCreate(ctx)
		if err == nil {
			_, via := ctl.(*control.Client)
			list, lerr := ctl.List(ctx)
			if lerr == nil {
				for _, r := range list {
					if r.AppConnectionID == req.Completion.ID {
						done()
						fmt.Fprintf(a.err, "note: the daemon stopped while it answered, but printer %q had been stored\n", r.Name)
						return added{rec: r, viaDaemon: via}, nil
					}
				}
				rec, aerr := ctl.Add(ctx, req)
				done()
				if !errors.Is(aerr, control.ErrNoAnswer) {
					if aerr != nil && rec.Name == "" {
						return added{}, aerr
					}
					fmt.Fprintln(a.err, "note: the daemon stopped before it stored the printer; it is stored now")
					return added{rec: rec, viaDaemon: via, warn: aerr}, nil
				}
				last = aerr
			} else {
				done()
				last = lerr
			}
		} else {
			last = err
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return added{}, fmt.Errorf("%w (looked for %s: %v)", control.ErrNoAnswer, lostAnswerWait, last)
		}
		select {
		case <-ctx.Done():
		case <-time.After(300 * time.Millisecond):
		}
	}
}

// keepUnstored hands the user a completion that arrived but could not be stored, so that nothing the portal
// returned once is lost: on a terminal it is shown once; otherwise it goes to a 0600 file.
func (a *app) keepUnstored(c portalflow.Completion, ke *portalflow.KeepError) error {
	const how = "fix the cause above, then run oeproxy connect --completion-url - "
	if a.interactive {
		fmt.Fprintf(a.err, "oeproxy received the App Connection but could not store it: %v\n"+
			"It is not lost. %sand paste this line (it holds the App Connection's secrets; it is shown only now):\n\n  %s\n\n",
			ke.Err, how, c.PasteQuery())
		return ke
	}
	path, err := saveUnstored(a, c)
	if err != nil {
		return fmt.Errorf("%w; it could not be kept either (%v): revoke App Connection %s on the OctoEverywhere website and run oeproxy connect again", ke, err, c.ID)
	}
	return fmt.Errorf("%w; the portal's answer is kept in %s (mode 0600): %s< %s, then delete the file", ke, path, how, path)
}

func saveUnstored(a *app, c portalflow.Completion) (string, error) {
	name := "unstored-connection-" + strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' {
			return r
		}
		return '_'
	}, c.ID) + ".txt"
	var dirs []string
	if cfg, err := a.config(); err == nil {
		dirs = append(dirs, cfg.DataDir)
	}
	var errs []error
	for _, dir := range append(dirs, os.TempDir()) {
		p := filepath.Join(dir, name)
		f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600) // O_EXCL: never through a planted link
		if err != nil {
			errs = append(errs, err)
			continue
		}
		_, werr := f.WriteString(c.PasteQuery() + "\n")
		if cerr := f.Close(); werr == nil {
			werr = cerr
		}
		if werr != nil {
			os.Remove(p)
			errs = append(errs, werr)
			continue
		}
		return p, nil
	}
	return "", errors.Join(errs...)
}
