package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"

	"github.com/spf13/cobra"
	"go.uber.org/zap"

	"github.com/oeproxy/oeproxy/config"
	"github.com/oeproxy/oeproxy/internal/logging"
	"github.com/oeproxy/oeproxy/internal/version"
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

// logFormat is the log format the user asked for (flag, environment or file), "" when unknown. run uses it to
// report the final error in the same format as the logs.
func (a *app) logFormat() string {
	if a.cfg != nil {
		return a.cfg.Log.Format
	}
	if a.root != nil {
		if f := a.root.PersistentFlags().Lookup("log-format"); f != nil && f.Changed {
			return strings.ToLower(f.Value.String())
		}
	}
	return strings.ToLower(os.Getenv(config.EnvName("log.format")))
}

// checkGlobalFlags refuses a bad value of a global flag as a usage error, before any command runs. The same
// value from the environment or the file is a configuration problem (exit 1), reported by config.Load.
func checkGlobalFlags(cmd *cobra.Command) error {
	allowed := map[string][]string{"log-level": {"debug", "info", "warn", "error"}, "log-format": {"console", "json"}}
	for _, name := range []string{"log-level", "log-format"} {
		f := cmd.Flags().Lookup(name)
		if f == nil || !f.Changed {
			continue
		}
		v := strings.ToLower(f.Value.String())
		if !slices.Contains(allowed[name], v) {
			return usageError{fmt.Errorf("--%s %q: use %s", name, f.Value.String(), strings.Join(allowed[name], ", "))}
		}
	}
	return nil
}

func newApp(s streams) (*app, *cobra.Command) {
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
		Version:       version.Get().String(),
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			return checkGlobalFlags(cmd)
		},
	}
	root.SetVersionTemplate("{{.Version}}\n")
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

	root.AddCommand(
		newConnectCmd(a), newServeCmd(a), newListCmd(a), newStatusCmd(a), newRemoveCmd(a), newRenameCmd(a), newPortCmd(a), newLANCmd(a), newMQTTCmd(a),
		newLiveLinkCmd(a), newGadgetCmd(a), newWebhookCmd(a), newStoreCmd(a), newAdminCmd(a),
		newHealthcheckCmd(a), newDemoCmd(a), newVersionCmd(a),
	)
	root.InitDefaultCompletionCmd()
	requireSubcommand(root)
	return a, root
}

// requireSubcommand makes every command that only groups subcommands (the root, completion, webhook) refuse a
// missing or unknown subcommand as a usage error: cobra would print the help and exit 0, and says "unknown
// command" only for the root, as an untyped error.
func requireSubcommand(cmd *cobra.Command) {
	for _, c := range cmd.Commands() {
		requireSubcommand(c)
	}
	if !cmd.HasSubCommands() || cmd.Runnable() {
		return
	}
	if cmd.SuggestionsMinimumDistance <= 0 {
		cmd.SuggestionsMinimumDistance = 2 // cobra's own default, which it applies only on its own error path
	}
	cmd.Args = func(c *cobra.Command, argv []string) error {
		if len(argv) == 0 {
			return nil
		}
		msg := fmt.Sprintf("unknown command %q for %q", argv[0], c.CommandPath())
		if s := c.SuggestionsFor(argv[0]); len(s) > 0 {
			msg += "\n\nDid you mean this?\n\t" + strings.Join(s, "\n\t")
			return usageError{multiLine{errors.New(msg)}}
		}
		return usageError{fmt.Errorf("%s (run %s --help for the list)", msg, c.CommandPath())}
	}
	cmd.RunE = func(c *cobra.Command, _ []string) error {
		if !c.HasParent() {
			return c.Help()
		}
		var names []string
		for _, sub := range c.Commands() {
			if sub.IsAvailableCommand() {
				names = append(names, sub.Name())
			}
		}
		return usageError{fmt.Errorf("%s needs a subcommand: %s (see %s --help)", c.CommandPath(), strings.Join(names, ", "), c.CommandPath())}
	}
}

// multiLine marks an error whose line breaks are part of the message (cobra's "Did you mean this?" list).
type multiLine struct{ error }

func (m multiLine) Unwrap() error { return m.error }

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
	var ml multiLine
	if strings.Contains(msg, "problem(s):") || errors.As(err, &ml) {
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
