//go:build linux

package route

import (
	"context"
	"errors"
	"syscall"

	"github.com/vishvananda/netlink"
	"go.uber.org/zap"
	"golang.org/x/sys/unix"
)

// watch follows netlink's address and route events. A netlink socket blocked in a read is not woken by closing it,
// so each subscription reads with a timeout of pollInterval and is renewed when it expires: Close then returns
// within that time, and changes made between two subscriptions are caught by comparing the addresses.
// Where netlink is not allowed (some sandboxes), it falls back to polling.
func (w *Watcher) watch(ctx context.Context) {
	prev := addrFingerprint()
	for ctx.Err() == nil {
		if err := w.subscribeOnce(ctx); err != nil {
			w.log.Info("network change events unavailable; polling the addresses instead", zap.Error(err))
			w.poll(ctx, pollInterval)
			return
		}
		if cur := addrFingerprint(); cur != prev {
			prev = cur
			w.notify("addresses")
		}
	}
}

// subscribeOnce listens until the read times out or ctx ends.
func (w *Watcher) subscribeOnce(ctx context.Context) error {
	tv := unix.NsecToTimeval(pollInterval.Nanoseconds())
	done := make(chan struct{})
	addrs := make(chan netlink.AddrUpdate, 16)
	routes := make(chan netlink.RouteUpdate, 16)
	quiet := func(err error) {
		if !errors.Is(err, syscall.EAGAIN) && !errors.Is(err, syscall.EBADF) {
			w.log.Debug("netlink", zap.Error(err))
		}
	}
	if err := netlink.AddrSubscribeWithOptions(addrs, done, netlink.AddrSubscribeOptions{ReceiveTimeout: &tv, ErrorCallback: quiet}); err != nil {
		return err
	}
	if err := netlink.RouteSubscribeWithOptions(routes, done, netlink.RouteSubscribeOptions{ReceiveTimeout: &tv, ErrorCallback: quiet}); err != nil {
		close(done)
		drain(addrs)
		return err
	}
	defer func() {
		close(done)
		drain(addrs)
		drain(routes)
	}()
	for addrs != nil || routes != nil {
		select {
		case <-ctx.Done():
			return nil
		case u, ok := <-addrs:
			if !ok {
				return nil
			}
			if !u.LinkAddress.IP.IsLoopback() {
				w.notify("address")
			}
		case u, ok := <-routes:
			if !ok {
				return nil
			}
			if u.Dst == nil || u.Dst.IP.IsUnspecified() { // a default route came, went or moved
				w.notify("default route")
			}
		}
	}
	return nil
}

// drain waits for a subscription's goroutine to end (it closes the channel), so that none outlives the Watcher.
func drain[T any](ch chan T) {
	for range ch {
	}
}
