package bench

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// netemLink is the kernel's version of Link: a network namespace that holds the relay's listening socket,
// reached from the host over a veth pair with `tc netem` on both ends (delay RTT/2, the rate and the loss, each
// way). Real TCP runs over it, with its real congestion response to loss. It needs root and the netem qdisc
// (NetemAvailable).
type netemLink struct {
	ns, hostDev, nsDev string
	hostIP, nsIP       string
}

// newNetemLink sets up the namespace and the veth pair for profile p; Close removes them.
func newNetemLink(p LinkProfile) (*netemLink, error) {
	n := os.Getpid()%200 + 20 // a /30 of its own per bench process: 10.203.n.0
	id := strconv.Itoa(os.Getpid())
	l := &netemLink{ns: "oebench-" + id, hostDev: "oeb" + id + "h", nsDev: "oeb" + id + "n",
		hostIP: fmt.Sprintf("10.203.%d.1", n), nsIP: fmt.Sprintf("10.203.%d.2", n)}
	netem := []string{"netem", "delay", fmt.Sprintf("%dus", p.RTT.Microseconds()/2),
		"rate", fmt.Sprintf("%gmbit", p.Mbit), "limit", "10000"}
	if p.Loss > 0 {
		netem = append(netem, "loss", fmt.Sprintf("%g%%", p.Loss*100))
	}
	steps := [][]string{
		{"ip", "netns", "add", l.ns},
		{"ip", "link", "add", l.hostDev, "type", "veth", "peer", "name", l.nsDev},
		{"ip", "link", "set", l.nsDev, "netns", l.ns},
		{"ip", "addr", "add", l.hostIP + "/30", "dev", l.hostDev},
		{"ip", "link", "set", l.hostDev, "up"},
		{"ip", "-n", l.ns, "addr", "add", l.nsIP + "/30", "dev", l.nsDev},
		{"ip", "-n", l.ns, "link", "set", l.nsDev, "up"},
		{"ip", "-n", l.ns, "link", "set", "lo", "up"},
		append([]string{"tc", "qdisc", "add", "dev", l.hostDev, "root"}, netem...),
		append([]string{"ip", "netns", "exec", l.ns, "tc", "qdisc", "add", "dev", l.nsDev, "root"}, netem...),
	}
	for _, s := range steps {
		if out, err := exec.Command(s[0], s[1:]...).CombinedOutput(); err != nil {
			l.Close()
			return nil, fmt.Errorf("bench: %s: %w: %s", strings.Join(s, " "), err, firstLine(out))
		}
	}
	return l, nil
}

// Listen opens a TCP listener inside the namespace, on its end of the veth pair. A socket belongs to the network
// namespace of the thread that created it, so one locked OS thread enters the namespace, listens, and is then
// thrown away (its goroutine ends without unlocking it), leaving every other thread in the host's namespace.
func (l *netemLink) Listen() (net.Listener, error) {
	type result struct {
		ln  net.Listener
		err error
	}
	ch := make(chan result, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread dies with this goroutine
		f, err := os.Open("/run/netns/" + l.ns)
		if err != nil {
			ch <- result{err: err}
			return
		}
		defer f.Close()
		if err := unix.Setns(int(f.Fd()), unix.CLONE_NEWNET); err != nil {
			ch <- result{err: fmt.Errorf("setns %s: %w", l.ns, err)}
			return
		}
		ln, err := net.Listen("tcp", net.JoinHostPort(l.nsIP, "0"))
		ch <- result{ln, err}
	}()
	r := <-ch
	if r.err != nil {
		return nil, fmt.Errorf("bench: listen in network namespace %s: %w", l.ns, r.err)
	}
	return r.ln, nil
}

// Close removes the namespace (and with it the veth pair).
func (l *netemLink) Close() error {
	_ = exec.Command("ip", "link", "del", l.hostDev).Run()
	if out, err := exec.Command("ip", "netns", "del", l.ns).CombinedOutput(); err != nil {
		return fmt.Errorf("bench: ip netns del %s: %w: %s", l.ns, err, firstLine(out))
	}
	return nil
}
