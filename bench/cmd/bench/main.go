// Command bench runs the oeproxy benchmark (`make bench`, `make bench-quick`): direct vs oeproxy vs nginx through
// oesim's relay. It prints the table and writes it, with the machine description, to -out.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"

	"github.com/oeproxy/oeproxy/bench"
)

func main() {
	quick := flag.Bool("quick", false, "tiny sizes and one round: proves the harness works (< 2 minutes)")
	out := flag.String("out", "", "write the results as markdown here (e.g. bench/RESULTS.md); empty: print only")
	rounds := flag.Int("rounds", 0, "number of rounds (default 5, or 1 with -quick)")
	noNginx := flag.Bool("no-nginx", false, "skip the nginx path even when nginx is installed")
	noHAProxy := flag.Bool("no-haproxy", false, "skip the HAProxy path even when haproxy is installed")
	bin := flag.String("oeproxy", "", "use this oeproxy binary instead of building one")
	notes := flag.String("notes", "bench/NOTES.md", "markdown appended to the results under \"Notes\" when the file exists (profiles, before/after figures)")
	only := flag.String("only", "", "comma-separated groups to run: start,transfer,get,drip,ws,mjpeg,webcam,idlews,wan,lan (default all)")
	wanIdle := flag.Duration("wan-idle", 0, "idle time before the WAN group's cold request (default 90s, or 200ms with -quick)")
	wanProfiles := flag.String("wan-profiles", "", "comma-separated WAN profiles to run, of: wan40,wan150,wan150h2 (default all, or wan40,wan150h2 with -quick)")
	wanRounds := flag.Int("wan-rounds", 0, "rounds of the WAN group per link profile (default 2, or 1 with -quick)")
	wanMiB := flag.Int64("wan-mib", 0, "MiB of the WAN group's transfers and slicer uploads (default 50, or 1 with -quick)")
	flag.Parse()

	cfg := bench.FullConfig()
	if *quick {
		cfg = bench.QuickConfig()
	}
	if *rounds > 0 {
		cfg.Rounds = *rounds
	}
	if *wanIdle > 0 {
		cfg.WANIdle = *wanIdle
	}
	if *wanProfiles != "" {
		cfg.WANProfiles = nil
		for _, k := range strings.Split(*wanProfiles, ",") {
			p, ok := bench.WANProfile(k)
			if !ok {
				fmt.Fprintln(os.Stderr, "bench: no WAN profile", k)
				os.Exit(2)
			}
			cfg.WANProfiles = append(cfg.WANProfiles, p)
		}
	}
	if *wanRounds > 0 {
		cfg.WANRounds = *wanRounds
	}
	if *wanMiB > 0 {
		cfg.WANTransferBytes = *wanMiB << 20
	}
	cfg.Wrk = bench.FindWrk()
	if !*noNginx {
		cfg.Nginx = bench.FindNginx()
	}
	if !*noHAProxy {
		cfg.HAProxy = bench.FindHAProxy()
	}
	cfg.OEProxyBin = *bin
	lan := true // the LAN route's group runs in this process (bench.MeasureLAN), beside Run's
	if *only != "" {
		cfg.Only = strings.Split(*only, ",")
		lan = slices.Contains(cfg.Only, "lan")
		cfg.Only = slices.DeleteFunc(cfg.Only, func(g string) bool { return g == "lan" })
	}
	cfg.Log = os.Stderr
	if cfg.Nginx == "" && !*noNginx {
		fmt.Fprintln(os.Stderr, "bench: nginx is not installed (scripts/bench-deps.sh installs it): measuring direct and oeproxy only")
	}
	if cfg.HAProxy == "" && !*noHAProxy {
		fmt.Fprintln(os.Stderr, "bench: haproxy is not installed (scripts/bench-deps.sh installs it): no HAProxy column")
	}
	if cfg.Wrk == "" {
		fmt.Fprintln(os.Stderr, "bench: wrk is not installed: requests/s come from a Go closed-loop client")
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var md string
	var res *bench.Results
	if *only == "" || len(cfg.Only) > 0 {
		var err error
		if res, err = bench.Run(ctx, cfg); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		md = res.Markdown()
	}
	if lan {
		n := 2000
		if *quick {
			n = 50
		}
		f, err := bench.MeasureLAN(ctx, n)
		if err != nil {
			fmt.Fprintln(os.Stderr, "bench: the LAN route:", err)
			os.Exit(1)
		}
		fmt.Fprintln(os.Stderr, f)
		md += "\n" + f.Markdown()
	}
	if b, err := os.ReadFile(*notes); err == nil && len(b) > 0 {
		md += "\n## Notes\n\n" + string(b)
	}
	fmt.Println(md)
	if *out != "" {
		if err := os.WriteFile(*out, []byte(md), 0o644); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		fmt.Fprintln(os.Stderr, "bench: wrote", *out)
		// The raw samples, for anyone who wants other statistics than the table's.
		if raw, err := json.MarshalIndent(res, "", "  "); err == nil && res != nil {
			_ = os.WriteFile(strings.TrimSuffix(*out, filepath.Ext(*out))+".json", append(raw, '\n'), 0o644)
		}
	}
	if res != nil {
		fmt.Fprintln(os.Stderr, res.Summary())
		if len(res.Errors) > 0 {
			os.Exit(1)
		}
	}
}
