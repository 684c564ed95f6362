package printer

import (
	"sync"
	"time"
)

// machine is the simulated printer's job state, shared by the HTTP API and the WebSocket pushes.
type machine struct {
	mu       sync.Mutex
	printing bool
	paused   bool
	file     string // selected file path ("" when none)
	size     int64
	started  time.Time
	start    time.Time // when the printer came up; eventtime in Moonraker terms
}

func newMachine() *machine { return &machine{start: time.Now()} }

type machineState struct {
	Printing, Paused bool
	File             string
	Size             int64
	PrintTime        float64 // seconds since the print started
	Uptime           float64 // seconds since the printer came up
}

func (m *machine) snapshot() machineState {
	m.mu.Lock()
	defer m.mu.Unlock()
	s := machineState{Printing: m.printing, Paused: m.paused, File: m.file, Size: m.size,
		Uptime: time.Since(m.start).Seconds()}
	if m.printing {
		s.PrintTime = time.Since(m.started).Seconds()
	}
	return s
}

func (m *machine) selectFile(path string, size int64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.file, m.size = path, size
}

// setPrinting starts or ends a print; starting without a selected file selects a placeholder,
// so that oesim can model "a print is running" without an upload.
func (m *machine) setPrinting(on bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if on && !m.printing {
		if m.file == "" {
			m.file, m.size = "oesim-test.gcode", 1024
		}
		m.started = time.Now()
	}
	m.printing, m.paused = on, false
}

func (m *machine) setPaused(p bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.printing {
		m.paused = p
	}
}

// temps returns (tool actual, tool target, bed actual, bed target): warm while printing.
func (s machineState) temps() (float64, float64, float64, float64) {
	if s.Printing {
		return 214.8, 215, 59.9, 60
	}
	return 23.4, 0, 22.9, 0
}
