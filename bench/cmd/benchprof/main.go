// Command benchprof runs oeproxy's proxy handler in-process against the bench environment under load, to profile
// what `make bench` shows: -mode get (wrk at fixed concurrency, CPU profile, dials to the relay counted) or
// -mode ws (idle WebSockets held open: heap profile, goroutines and heap per connection). -idle-per-host
// overrides the relay transport's MaxIdleConnsPerHost to compare pool sizes.
package main

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"runtime"
	"runtime/pprof"
	"strconv"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/coder/websocket"

	"github.com/oeproxy/oeproxy/bench"
	"github.com/oeproxy/oeproxy/internal/oenet"
	"github.com/oeproxy/oeproxy/proxy"
)

func main() {
	mode := flag.String("mode", "get", "get, ws, or env (internal: serve the environment for -separate)")
	separate := flag.Bool("separate", false, "run oesim and the origin in a child process, so that profiles hold only the proxy (and the client)")
	conns := flag.Int("c", 64, "wrk connections (get) or idle WebSockets (ws)")
	dur := flag.Duration("d", 5*time.Second, "wrk duration")
	idle := flag.Int("idle-per-host", 0, "override MaxIdleConnsPerHost of the relay transport (0: oenet's default)")
	cpuprof := flag.String("cpuprofile", "", "write a CPU profile (get)")
	memprof := flag.String("memprofile", "", "write a heap profile (ws)")
	memRate := flag.Int("memprofilerate", 0, "runtime.MemProfileRate for -memprofile (1: every allocation, exact per-connection bytes; 0: Go's default)")
	flag.Parse()
	if *memRate > 0 {
		runtime.MemProfileRate = *memRate
	}
	if *mode == "env" {
		serveEnv()
		return
	}
	if err := run(*mode, *conns, *dur, *idle, *cpuprof, *memprof, *separate); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

// envInfo is what a separate environment process tells its parent.
type envInfo struct {
	Addr, CAPEM, URL, User, Password string
}

// serveEnv starts the environment, prints its envInfo as JSON and runs until stdin closes.
func serveEnv() {
	env, err := bench.StartEnv(context.Background())
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	defer env.Close()
	_ = json.NewEncoder(os.Stdout).Encode(envInfo{Addr: env.Sim.Addr, CAPEM: string(env.Sim.CACertPEM), URL: env.Creds.URL,
		User: env.Creds.BasicUser, Password: env.Creds.BasicPassword})
	_, _ = io.Copy(io.Discard, os.Stdin)
}

func startEnv(ctx context.Context, separate bool) (envInfo, func(), error) {
	if !separate {
		env, err := bench.StartEnv(ctx)
		if err != nil {
			return envInfo{}, nil, err
		}
		return envInfo{Addr: env.Sim.Addr, CAPEM: string(env.Sim.CACertPEM), URL: env.Creds.URL,
			User: env.Creds.BasicUser, Password: env.Creds.BasicPassword}, env.Close, nil
	}
	cmd := exec.Command(os.Args[0], "-mode", "env")
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		return envInfo{}, nil, err
	}
	var info envInfo
	if err := json.NewDecoder(stdout).Decode(&info); err != nil {
		_ = cmd.Process.Kill()
		return envInfo{}, nil, err
	}
	return info, func() { stdin.Close(); _ = cmd.Wait() }, nil
}

func run(mode string, conns int, dur time.Duration, idle int, cpuprof, memprof string, separate bool) error {
	ctx := context.Background()
	env, stopEnv, err := startEnv(ctx, separate)
	if err != nil {
		return err
	}
	defer stopEnv()
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM([]byte(env.CAPEM))
	var dials atomic.Int64
	o := oenet.Options{ConnectTo: env.Addr, RootCAs: roots}
	tr := o.Transport()
	base := tr.DialContext
	tr.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		dials.Add(1)
		return base(ctx, network, addr)
	}
	if idle > 0 {
		tr.MaxIdleConnsPerHost = idle
	}
	relay, _ := url.Parse(env.URL)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	h, err := proxy.New(proxy.Printer{Name: "bench", RelayURL: relay, Auth: "basic", BasicUser: env.User,
		BasicPassword: env.Password}, proxy.Options{Transport: tr, ListenAddr: ln.Addr().String()})
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 30 * time.Second, IdleTimeout: 120 * time.Second, MaxHeaderBytes: 1 << 20}
	go srv.Serve(ln)
	defer srv.Close()
	defer h.Close()
	addr := ln.Addr().String()

	switch mode {
	case "get":
		if cpuprof != "" {
			f, err := os.Create(cpuprof)
			if err != nil {
				return err
			}
			defer f.Close()
			if err := pprof.StartCPUProfile(f); err != nil {
				return err
			}
			defer pprof.StopCPUProfile()
		}
		cpu0 := cpuTime()
		out, err := exec.Command("wrk", "-t1", "-c"+strconv.Itoa(conns), "-d"+strconv.Itoa(int(dur.Seconds()))+"s",
			"http://"+addr+"/small").CombinedOutput()
		fmt.Printf("%s\ndials to the relay during the run: %d\nproxy CPU time during the run: %s\n", out, dials.Load(), cpuTime()-cpu0)
		return err
	case "ws":
		runtime.GC()
		var before runtime.MemStats
		runtime.ReadMemStats(&before)
		g0 := runtime.NumGoroutine()
		var open []*websocket.Conn
		for range conns {
			c, _, err := websocket.Dial(ctx, "ws://"+addr+"/ws/echo", nil)
			if err != nil {
				return err
			}
			if err := c.Write(ctx, websocket.MessageText, []byte("hi")); err != nil {
				return err
			}
			if _, _, err := c.Read(ctx); err != nil {
				return err
			}
			open = append(open, c)
		}
		time.Sleep(time.Second)
		runtime.GC()
		var after runtime.MemStats
		runtime.ReadMemStats(&after)
		g1 := runtime.NumGoroutine()
		// The process holds the client, proxy, relay and origin sides: divide what the proxy owns by reading the
		// heap profile; these totals are for orientation.
		fmt.Printf("%d WebSockets: goroutines +%.1f per connection (all four sides), heap in use +%.1f KiB, stacks +%.1f KiB per connection (all sides)\n",
			conns, float64(g1-g0)/float64(conns),
			float64(after.HeapInuse-before.HeapInuse)/1024/float64(conns),
			float64(after.StackInuse-before.StackInuse)/1024/float64(conns))
		if memprof != "" {
			f, err := os.Create(memprof)
			if err != nil {
				return err
			}
			defer f.Close()
			if err := pprof.Lookup("heap").WriteTo(f, 0); err != nil {
				return err
			}
		}
		for _, c := range open {
			c.CloseNow()
		}
		return nil
	}
	return fmt.Errorf("unknown -mode %q", mode)
}

// cpuTime is this process's user+system CPU time (with -separate: the proxy's and the wrk-facing server's only).
func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
