//go:build !race

package oesim

const raceEnabled = false
