//go:build !linux

package route

import "context"

// watch polls the interface addresses: there are no portable change events.
func (w *Watcher) watch(ctx context.Context) { w.poll(ctx, pollInterval) }
