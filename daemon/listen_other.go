//go:build !unix

package daemon

// fdLimit is unknown here: the printer listeners share no descriptor budget.
func fdLimit() uint64 { return 0 }
