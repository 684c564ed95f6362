package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/oeproxy/oeproxy/admin"
	"github.com/spf13/cobra"
)

func newAdminCmd(a *app) *cobra.Command {
	var open bool
	cmd := &cobra.Command{
		Use:   "admin",
		Short: "Print a one-time login address for the admin page of the running daemon",
		Long: `The admin page (admin.listen) needs a login, so that another user of this computer, or a web page
that found the port, cannot remove printers or make Live Links. The running daemon keeps a one-time login
address in <data_dir>/` + admin.LoginFile + ` (readable only by its user); this command prints it.
Open it in the browser that should use the admin page: it logs that browser in and is then used up, so run
oeproxy admin again for another browser. Run it as the user that runs oeproxy serve (for the system
service: sudo -u oeproxy oeproxy admin --data-dir /var/lib/oeproxy).`,
		Example: "  oeproxy admin\n  oeproxy admin --open",
		Args:    args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			l, err := a.config()
			if err != nil {
				return err
			}
			path := filepath.Join(l.Config.DataDir, admin.LoginFile)
			raw, err := os.ReadFile(path)
			switch {
			case errors.Is(err, fs.ErrNotExist):
				return fmt.Errorf("no admin login address in %s: start the daemon with `oeproxy serve` (with the same "+
					"--data-dir), and check that admin.listen is not empty", l.Config.DataDir)
			case errors.Is(err, fs.ErrPermission):
				return fmt.Errorf("read %s: %w: run oeproxy admin as the user that runs oeproxy serve", path, err)
			case err != nil:
				return fmt.Errorf("read the admin login address: %w", err)
			}
			loginURL := strings.TrimSpace(string(raw))
			if !strings.HasPrefix(loginURL, "http://") || !strings.Contains(loginURL, "/login?token=") {
				return fmt.Errorf("%s does not hold a login address: restart oeproxy serve to write a new one", path)
			}
			if _, err := fmt.Fprintln(a.out, loginURL); err != nil {
				return err
			}
			if open {
				if err := openBrowser(loginURL); err != nil {
					return fmt.Errorf("open a browser: %w: open the address above yourself", err)
				}
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&open, "open", false, "also open the address in the default browser")
	return cmd
}
