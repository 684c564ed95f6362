// Command oeproxy reaches a 3D printer from anywhere through an OctoEverywhere App Connection: it opens one
// localhost port per printer that behaves like the printer's own LAN address. See README.md.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], newStreams()))
}

// run executes the command line and returns the exit status: 0 success, 1 failure, 2 usage error.
func run(ctx context.Context, args []string, s streams) int {
	root := newRoot(s)
	root.SetArgs(args)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return 0
	}
	fmt.Fprintln(s.err, "oeproxy: "+oneLine(err))
	var u usageError
	if errors.As(err, &u) || strings.HasPrefix(err.Error(), "unknown command") {
		return 2
	}
	return 1
}
