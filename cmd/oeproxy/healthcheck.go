package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/spf13/cobra"
)

// newHealthcheckCmd is what the Docker HEALTHCHECK runs: the image has no curl or wget, so the binary checks
// its own admin listener.
func newHealthcheckCmd(a *app) *cobra.Command {
	var (
		rawURL  string
		timeout time.Duration
	)
	cmd := &cobra.Command{
		Use:   "healthcheck",
		Short: "Exit 0 when the running daemon's admin /healthz answers 200, else 1",
		Long: `Check that a running "oeproxy serve" is alive by getting its admin /healthz. Exits 0 on a 200
answer and 1 otherwise, with a one-line reason on stderr. The URL defaults to the configured admin.listen
(a wildcard address such as 0.0.0.0 is checked on 127.0.0.1). This is the Docker image's HEALTHCHECK.`,
		Example: "  oeproxy healthcheck\n  oeproxy healthcheck --url http://127.0.0.1:7080/readyz --timeout 5s",
		Args:    args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if timeout <= 0 {
				return usageError{fmt.Errorf("--timeout must be positive, got %s", timeout)}
			}
			target := rawURL
			if target == "" {
				c, err := a.config()
				if err != nil {
					return err
				}
				if target, err = healthzURL(c.Admin.Listen); err != nil {
					return err
				}
			} else if u, err := url.Parse(target); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
				return usageError{fmt.Errorf("--url %q: want an absolute http(s) URL such as http://127.0.0.1:7080/healthz", target)}
			}
			if err := checkHealth(cmd.Context(), target, timeout); err != nil {
				return err
			}
			_, err := fmt.Fprintf(a.out, "healthy: %s answered 200\n", target)
			return err
		},
	}
	cmd.Flags().StringVar(&rawURL, "url", "", "URL to get (default http://<admin.listen>/healthz)")
	cmd.Flags().DurationVar(&timeout, "timeout", 3*time.Second, "give up after this long")
	return cmd
}

// healthzURL turns admin.listen into the URL of /healthz. A wildcard host (empty, 0.0.0.0, ::) is not an
// address a client can dial portably, so it is checked on the loopback address of the same family.
func healthzURL(listen string) (string, error) {
	host, port, err := net.SplitHostPort(listen)
	if err != nil || port == "" {
		return "", fmt.Errorf("admin.listen %q is not host:port (set it, e.g. 127.0.0.1:7080, or pass --url)", listen)
	}
	switch host {
	case "", "0.0.0.0":
		host = "127.0.0.1"
	case "::", "[::]":
		host = "::1"
	}
	return (&url.URL{Scheme: "http", Host: net.JoinHostPort(host, port), Path: "/healthz"}).String(), nil
}

// checkHealth gets target once and returns nil only for a 200 answer.
func checkHealth(ctx context.Context, target string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, target, nil)
	if err != nil {
		return fmt.Errorf("health check %s: %w", target, err)
	}
	client := &http.Client{
		// No proxy from the environment: the daemon is local, and an HTTP_PROXY set for OctoEverywhere traffic
		// must not decide whether the container is healthy. A redirect is not health either.
		Transport:     &http.Transport{Proxy: nil, DisableKeepAlives: true},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	defer client.CloseIdleConnections()
	resp, err := client.Do(req)
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			return fmt.Errorf("health check %s: no answer within %s (is the daemon overloaded or stuck?)", target, timeout)
		}
		// *url.Error repeats the method and URL; keep only its cause.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return fmt.Errorf("health check %s: %w (is `oeproxy serve` running with this admin.listen?)", target, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 200))
	if resp.StatusCode != http.StatusOK {
		reason := strings.Join(strings.Fields(string(body)), " ")
		if reason != "" {
			reason = ": " + reason
		}
		return fmt.Errorf("health check %s: status %s%s", target, resp.Status, reason)
	}
	return nil
}
