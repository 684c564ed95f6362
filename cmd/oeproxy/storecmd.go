package main

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/oeproxy/oeproxy/credstore"
)

// Environment variables that carry the new key for rotate-key (the current one stays in OEPROXY_MASTER_KEY or
// OEPROXY_PASSPHRASE while the store is opened).
const (
	envNewMasterKey  = "OEPROXY_NEW_MASTER_KEY"
	envNewPassphrase = "OEPROXY_NEW_PASSPHRASE"
)

func newStoreCmd(a *app) *cobra.Command {
	store := &cobra.Command{
		Use:   "store",
		Short: "Manage the encrypted credential store",
		Args:  args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return usageError{errors.New("store needs a subcommand: rotate-key")}
		},
	}
	var toPassphrase, toMasterKey bool
	var toKeyFile string
	rotate := &cobra.Command{
		Use:   "rotate-key",
		Short: "Re-encrypt the store under a new master key",
		Long: `Re-encrypt every record of the store under a new master key, in one transaction: a crash at any
point leaves a store that opens with the old key or with the new one, never neither.

Without a flag the key stays of the same kind: a new random key replaces the key file, or the new key
is taken from ` + envNewMasterKey + ` / ` + envNewPassphrase + ` when the store is opened with an
environment key. --to-key-file, --to-passphrase and --to-master-key switch the kind. A new passphrase
is read from ` + envNewPassphrase + `, or asked twice on the terminal.

Stop the daemon first: it holds the store.`,
		Example: `  oeproxy store rotate-key
  oeproxy store rotate-key --to-key-file /etc/oeproxy/master.key
  OEPROXY_NEW_PASSPHRASE='correct horse' oeproxy store rotate-key --to-passphrase`,
		Args: args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			n := 0
			for _, b := range []bool{toPassphrase, toMasterKey, toKeyFile != ""} {
				if b {
					n++
				}
			}
			if n > 1 {
				return usageError{errors.New("give at most one of --to-passphrase, --to-master-key, --to-key-file")}
			}
			cfg, err := a.config()
			if err != nil {
				return err
			}
			st, err := a.openStore()
			if err != nil {
				if errors.Is(err, credstore.ErrInUse) {
					return fmt.Errorf("%w: stop `oeproxy serve` first, then rotate", err)
				}
				return err
			}
			defer st.Close()
			current := st.KeySource()
			var next credstore.KeySource
			var after string
			switch {
			case toKeyFile != "":
				next = credstore.KeyFile(toKeyFile)
				after = fmt.Sprintf("set store.key_file: %s (and unset %s/%s if set)", toKeyFile, credstore.EnvMasterKey, credstore.EnvPassphrase)
			case toPassphrase || (!toMasterKey && os.Getenv(credstore.EnvPassphrase) != "" && os.Getenv(credstore.EnvMasterKey) == ""):
				pass, err := a.newPassphrase()
				if err != nil {
					return err
				}
				next = credstore.Passphrase(pass, credstore.Argon2Params{})
				after = "set " + credstore.EnvPassphrase + " to the new passphrase (and unset " + credstore.EnvMasterKey + ")"
			case toMasterKey || os.Getenv(credstore.EnvMasterKey) != "":
				raw := strings.TrimSpace(os.Getenv(envNewMasterKey))
				if raw == "" {
					return usageError{fmt.Errorf("set %s to the new key (base64 of 32 bytes, e.g. from `head -c 32 /dev/urandom | base64`)", envNewMasterKey)}
				}
				key, err := base64.StdEncoding.DecodeString(raw)
				if err != nil {
					return fmt.Errorf("%s is not base64: generate one with `head -c 32 /dev/urandom | base64`", envNewMasterKey)
				}
				if next, err = credstore.MasterKey(key); err != nil {
					return err
				}
				after = "set " + credstore.EnvMasterKey + " to the value of " + envNewMasterKey
			default:
				next = credstore.KeyFile(cfg.Store.KeyFile)
				after = "keep a backup of " + cfg.Store.KeyFile + ": without it the store cannot be opened"
			}
			if err := st.RotateKey(next); err != nil {
				return err
			}
			fmt.Fprintf(a.out, "Store %s re-encrypted: it was opened with %s and now opens with %s.\n", st.Path(), current, st.KeySource())
			fmt.Fprintln(a.out, "Next: "+after+".")
			return nil
		},
	}
	rotate.Flags().BoolVar(&toPassphrase, "to-passphrase", false, "switch to a passphrase ("+envNewPassphrase+" or asked on the terminal)")
	rotate.Flags().BoolVar(&toMasterKey, "to-master-key", false, "switch to a key given in "+envNewMasterKey+" (then set "+credstore.EnvMasterKey+")")
	rotate.Flags().StringVar(&toKeyFile, "to-key-file", "", "switch to a new random key written to this file (must not exist)")
	store.AddCommand(rotate)
	return store
}

// newPassphrase reads the new passphrase from the environment, or twice from the terminal.
func (a *app) newPassphrase() (string, error) {
	if p := os.Getenv(envNewPassphrase); p != "" {
		return p, nil
	}
	if !a.interactive {
		return "", usageError{fmt.Errorf("set %s to the new passphrase (no terminal to ask on)", envNewPassphrase)}
	}
	fd := int(os.Stdin.Fd())
	fmt.Fprint(a.err, "New passphrase: ")
	p1, err := term.ReadPassword(fd)
	fmt.Fprintln(a.err)
	if err != nil {
		return "", err
	}
	fmt.Fprint(a.err, "Again: ")
	p2, err := term.ReadPassword(fd)
	fmt.Fprintln(a.err)
	if err != nil {
		return "", err
	}
	if !bytes.Equal(p1, p2) {
		return "", errors.New("the passphrases differ; nothing changed")
	}
	if len(p1) < 8 {
		return "", errors.New("use a passphrase of at least 8 characters; nothing changed")
	}
	return string(p1), nil
}
