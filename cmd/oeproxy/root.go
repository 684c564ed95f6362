package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"
	"go.uber.org/zap"

	"github.com/oeproxy/oeproxy/config"
	"github.com/oeproxy/oeproxy/internal/logging"
)

// streams are the command's standard files; tests replace them.
type streams struct {
	in       io.Reader
	out, err io.Writer
	// interactive says whether stdin is a terminal (for confirmations).
	interactive bool
}

func newStreams() streams {
	return streams{in: os.Stdin, out: os.Stdout, err: os.Stderr, interactive: isTerminal(os.Stdin)}
}

// usageError marks a mistake in how the command was called (exit status 2).
type usageError struct{ error }

func (u usageError) Unwrap() error { return u.error }

// app is what every command shares: the streams, the flags, and the configuration loaded on first use.
type app struct {
	streams
	root   *cobra.Command
	cfg    *config.Loaded
	logger *zap.Logger
}

// config loads the configuration (flag > env > file > default) once.
func (a *app) config() (*config.Loaded, error) {
	if a.cfg != nil {
		return a.cfg, nil
	}
	file, _ := a.root.PersistentFlags().GetString("config")
	c, err := config.Load(config.LoadOptions{File: file, Flags: a.root.PersistentFlags()})
	if err != nil {
		return nil, err
	}
	a.cfg = c
	return c, nil
}

// log returns the process logger, built from the configuration (stderr).
func (a *app) log() (*zap.Logger, error) {
	if a.logger != nil {
		return a.logger, nil
	}
	c, err := a.config()
	if err != nil {
		return nil, err
	}
	l, err := logging.New(c.Log.Level, c.Log.Format, a.err)
	if err != nil {
		return nil, err
	}
	a.logger = l
	return l, nil
}

func newRoot(s streams) *cobra.Command {
	a := &app{streams: s}
	root := &cobra.Command{
		Use:   "oeproxy",
		Short: "Reach a 3D printer from anywhere through an OctoEverywhere App Connection",
		Long: `oeproxy opens one localhost port per printer that behaves like the printer's own LAN address.
Slicers (PrusaSlicer, OrcaSlicer, Cura), the OctoPrint or Mainsail web UI and scripts point at
http://127.0.0.1:5001 and reach the printer through its OctoEverywhere App Connection, with the App
Connection's credentials added by oeproxy.

Configuration: --config FILE, else $XDG_CONFIG_HOME/oeproxy/config.yaml, else /etc/oeproxy/config.yaml;
every key can be set as OEPROXY_<KEY> (e.g. OEPROXY_LISTEN_HOST). Flags beat the environment, which beats the file.`,
		Example: `  oeproxy connect --printer-url http://192.168.1.20   # link a printer (opens the browser)
  oeproxy serve                                        # serve every linked printer
  oeproxy list`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	a.root = root
	root.SetIn(s.in)
	root.SetOut(s.out)
	root.SetErr(s.err)
	pf := root.PersistentFlags()
	pf.String("config", "", "config file (default $XDG_CONFIG_HOME/oeproxy/config.yaml, else /etc/oeproxy/config.yaml)")
	pf.String("data-dir", "", "directory of the store, key file and control socket (default $XDG_DATA_HOME/oeproxy)")
	pf.String("log-level", "", "log level: debug, info, warn or error (default info)")
	pf.String("log-format", "", "log format: console or json (default console on a terminal, json otherwise)")
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{err} })

	for _, add := range commands {
		root.AddCommand(add(a))
	}
	return root
}

// commands lists the constructors of the subcommands; each command's file appends to it.
var commands []func(*app) *cobra.Command

// args wraps a cobra argument validator so that a wrong number of arguments is a usage error.
func args(v cobra.PositionalArgs) cobra.PositionalArgs {
	return func(cmd *cobra.Command, a []string) error {
		if err := v(cmd, a); err != nil {
			return usageError{fmt.Errorf("%w (see %s --help)", err, cmd.CommandPath())}
		}
		return nil
	}
}

// oneLine keeps the first line of an error for stderr, with multi-line validation errors kept whole.
func oneLine(err error) string {
	msg := err.Error()
	if strings.Contains(msg, "problem(s):") {
		return msg
	}
	return strings.ReplaceAll(msg, "\n", " ")
}

// printJSON writes v as indented JSON: the stable --json output of list, status and version.
func (a *app) printJSON(v any) error {
	enc := json.NewEncoder(a.out)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
