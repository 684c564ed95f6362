package bench

import (
	"net/http"
	"time"
)

// Path names, in the order the table shows them.
const (
	PathDirect  = "direct"
	PathOEProxy = "oeproxy"
	PathNginx   = "nginx"
	PathHAProxy = "haproxy"
)

// Path is one way from the client to the origin.
type Path struct {
	Name string
	// BaseURL is where requests go: https://app-<id>.<domain> (direct) or http://127.0.0.1:<port> (a proxy).
	BaseURL string
	// Header is added to every request: the credential on the direct path, nothing through a proxy.
	Header http.Header
	// Transport carries the Go clients' requests (keep-alive pool sized for the load).
	Transport *http.Transport
	// WrkURL and WrkArgs drive wrk: the direct path dials the sim's address and names the app host in Host.
	WrkURL  string
	WrkArgs []string
	// Proc is the proxy process measured for memory; nil on the direct path.
	Proc Process
	// NewTransport makes a transport like Transport with no connection open yet and a browser's limit of conns
	// connections per host: a new visit, for the WAN figures.
	NewTransport func(conns int) *http.Transport
}

// Process is a proxy running as child process(es).
type Process interface {
	// PIDs are the processes whose memory counts (nginx: the master and its workers).
	PIDs() []int
	// Start starts it and returns the time from exec to the first request it served.
	Start() (time.Duration, error)
	// Stop ends it (SIGTERM, then SIGKILL after a grace time) and reports an unclean exit.
	Stop() error
}

func (p *Path) url(pathAndQuery string) string { return p.BaseURL + pathAndQuery }

func (p *Path) newRequest(method, pathAndQuery string) (*http.Request, error) {
	req, err := http.NewRequest(method, p.url(pathAndQuery), nil)
	if err != nil {
		return nil, err
	}
	for k, v := range p.Header {
		req.Header[k] = v
	}
	return req, nil
}

func (p *Path) client() *http.Client { return &http.Client{Transport: p.Transport} }

// fresh is p with a new transport of at most conns connections, none open: a client that has not talked to the
// path yet (or long enough ago that its connections closed). Close the transport's idle connections after use.
func (p *Path) fresh(conns int) *Path {
	q := *p
	q.Transport = p.NewTransport(conns)
	return &q
}

// memory sums the memory of the path's processes; ok is false on the direct path.
func (p *Path) memory() (Memory, bool, error) {
	if p.Proc == nil {
		return Memory{}, false, nil
	}
	m, err := SumMemory(p.Proc.PIDs())
	return m, err == nil, err
}

// startCPU reads the CPU time of the path's processes; the returned function gives the CPU used since, or false
// on the direct path (or when /proc could not be read).
func (p *Path) startCPU() func() (time.Duration, bool) {
	if p.Proc == nil {
		return func() (time.Duration, bool) { return 0, false }
	}
	pids := p.Proc.PIDs()
	c0, err := SumCPU(pids)
	return func() (time.Duration, bool) {
		c1, err1 := SumCPU(pids)
		return c1 - c0, err == nil && err1 == nil
	}
}

// startPeak resets the processes' VmHWM and samples their RSS; the returned function stops and gives the peak.
func (p *Path) startPeak() func() int64 {
	if p.Proc == nil {
		return func() int64 { return 0 }
	}
	pids := p.Proc.PIDs()
	for _, pid := range pids {
		_ = ResetPeak(pid)
	}
	return samplePeak(pids).Stop
}

// DirectPath is the client talking to the relay itself with the credential.
func (e *Env) DirectPath(conns int) *Path {
	return &Path{
		Name:      PathDirect,
		BaseURL:   e.Creds.URL,
		Header:    http.Header{"Authorization": {e.BasicAuth()}},
		Transport: e.directTransport(conns),
		NewTransport: func(n int) *http.Transport {
			t := e.directTransport(n)
			t.MaxConnsPerHost = n
			return t
		},
		WrkURL:  "https://" + e.RelayAddr,
		WrkArgs: []string{"-H", "Host: " + e.Creds.Host, "-H", "Authorization: " + e.BasicAuth()},
	}
}

// localPath is a client talking plain HTTP to a local proxy on addr.
func localPath(name, addr string, proc Process, conns int) *Path {
	return &Path{
		Name:      name,
		BaseURL:   "http://" + addr,
		Header:    http.Header{},
		Transport: localTransport(conns),
		NewTransport: func(n int) *http.Transport {
			t := localTransport(n)
			t.MaxConnsPerHost = n
			return t
		},
		WrkURL: "http://" + addr,
		Proc:   proc,
	}
}
