//go:build unix

package daemon

import "syscall"

// fdLimit is the process's soft RLIMIT_NOFILE (the Go runtime raises it to the hard limit at start); 0 if unknown.
func fdLimit() uint64 {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		return 0
	}
	if n := uint64(rl.Cur); n < 1<<40 { // larger: unlimited
		return n
	}
	return 0
}
