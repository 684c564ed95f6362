package portalflow

import (
	"errors"
	"fmt"
	"net/url"
	"os/exec"
	"runtime"
	"time"
)

// browserCommand is the command that opens target in the user's default browser on goos.
func browserCommand(goos, target string) (string, []string) {
	switch goos {
	case "darwin":
		return "open", []string{target}
	case "windows":
		// rundll32 hands the URL to the default handler without a shell, so no cmd.exe quoting applies.
		return "rundll32", []string{"url.dll,FileProtocolHandler", target}
	default:
		return "xdg-open", []string{target}
	}
}

// OpenBrowser opens an http(s) URL in the system browser (xdg-open, open or rundll32). Only absolute http(s)
// URLs are accepted, so nothing else (a file, a command-line option) can reach the opener. It waits at most
// a few seconds for the opener to hand over; an opener that fails fast reports its error.
func OpenBrowser(target string) error {
	u, err := url.Parse(target)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return errors.New("refusing to open something that is not an http(s) URL")
	}
	name, args := browserCommand(runtime.GOOS, target)
	return runOpener(name, args, 5*time.Second)
}

func runOpener(name string, args []string, wait time.Duration) error {
	path, err := exec.LookPath(name)
	if err != nil {
		return fmt.Errorf("no %s to open a browser with: open the URL yourself", name)
	}
	cmd := exec.Command(path, args...)
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", name, err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }() // ends when the opener exits; openers exit once the browser has the URL
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case err := <-done:
		if err != nil {
			return fmt.Errorf("%s failed (%v): open the URL yourself", name, err)
		}
		return nil
	case <-t.C:
		return nil // still running: some openers stay until the browser exits; the URL was handed over
	}
}

// Headless reports whether opening a browser here is probably useless: the session came over SSH
// (SSH_CONNECTION or SSH_TTY), or on Linux and the BSDs there is no display (neither DISPLAY nor
// WAYLAND_DISPLAY). getenv is os.Getenv in production. The caller then prints the portal URL and the paste
// fallback instead.
func Headless(getenv func(string) string) bool {
	return headless(runtime.GOOS, getenv)
}

func headless(goos string, getenv func(string) string) bool {
	if getenv("SSH_CONNECTION") != "" || getenv("SSH_TTY") != "" {
		return true
	}
	switch goos {
	case "darwin", "windows", "android", "ios", "js", "wasip1", "plan9":
		return false
	}
	return getenv("DISPLAY") == "" && getenv("WAYLAND_DISPLAY") == ""
}
