// Command oeproxy reaches a 3D printer from anywhere through an OctoEverywhere App Connection: it opens one
// localhost port per printer that behaves like the printer's own LAN address. See README.md.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/oeproxy/oeproxy/internal/logging"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], newStreams()))
}

// Exit statuses (README "Commands").
const (
	exitFailure   = 1
	exitUsage     = 2
	exitCancelled = 130 // what a shell reports for a command stopped by SIGINT
)

// run executes the command line and returns the exit status: 0 success, 1 failure, 2 usage error, 130 cancelled.
func run(ctx context.Context, args []string, s streams) int {
	a, root := newApp(s)
	root.SetArgs(args)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return 0
	}
	code, msg := exitFailure, oneLine(err)
	var u usageError
	switch {
	case errors.As(err, &u):
		code = exitUsage
	case errors.Is(err, context.Canceled) && ctx.Err() != nil:
		// The user pressed Ctrl-C (or the service manager stopped us): "context canceled" from deep inside
		// says nothing useful, and nothing was left half done that the command did not already report.
		code, msg = exitCancelled, "cancelled"
	}
	if a.logFormat() == "json" {
		reportJSON(s, msg, code)
	} else {
		fmt.Fprintln(s.err, "oeproxy: "+msg)
	}
	return code
}

// reportJSON writes the final error as one JSON log line, so that a log collector reading --log-format json
// gets the reason the process stopped in the same format as every other line.
func reportJSON(s streams, msg string, code int) {
	l, err := logging.New("error", "json", s.err)
	if err != nil {
		fmt.Fprintln(s.err, "oeproxy: "+msg)
		return
	}
	lvl := zapcore.ErrorLevel
	if code == exitCancelled {
		lvl = zapcore.InfoLevel
	}
	l.Log(lvl, msg, zap.Int("exit_code", code))
	_ = l.Sync()
}
