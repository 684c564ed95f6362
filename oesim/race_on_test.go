//go:build race

package oesim

// raceEnabled shrinks the biggest payloads: the race detector makes a 65 MiB WebSocket echo take tens of seconds.
const raceEnabled = true
