package bench

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// Memory is what /proc/<pid>/status says about a process's resident memory, in bytes.
type Memory struct {
	RSS  int64 // VmRSS: resident now
	Peak int64 // VmHWM: the high-water mark since start or since ResetPeak
}

// ReadMemory reads VmRSS and VmHWM of pid (Linux only).
func ReadMemory(pid int) (Memory, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return Memory{}, fmt.Errorf("read memory of pid %d: %w (the bench needs Linux /proc)", pid, err)
	}
	defer f.Close()
	var m Memory
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		var dst *int64
		switch {
		case strings.HasPrefix(line, "VmRSS:"):
			dst = &m.RSS
		case strings.HasPrefix(line, "VmHWM:"):
			dst = &m.Peak
		default:
			continue
		}
		fields := strings.Fields(line)
		if len(fields) >= 2 {
			kb, _ := strconv.ParseInt(fields[1], 10, 64)
			*dst = kb << 10
		}
	}
	return m, sc.Err()
}

// ResetPeak sets VmHWM back to the current RSS (writing 5 to clear_refs, Linux 4.0 and later), so that a later
// ReadMemory gives the peak of what happened in between.
func ResetPeak(pid int) error {
	return os.WriteFile(fmt.Sprintf("/proc/%d/clear_refs", pid), []byte("5"), 0)
}

// SumMemory adds up the memory of several processes (nginx's master and workers).
func SumMemory(pids []int) (Memory, error) {
	var total Memory
	for _, pid := range pids {
		m, err := ReadMemory(pid)
		if err != nil {
			return Memory{}, err
		}
		total.RSS += m.RSS
		total.Peak += m.Peak
	}
	return total, nil
}

// childrenOf lists the direct children of pid by scanning /proc/*/stat (nginx's workers).
func childrenOf(pid int) []int {
	var out []int
	stats, _ := filepath.Glob("/proc/[0-9]*/stat")
	for _, p := range stats {
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...; comm may hold spaces and parentheses, so split after the last ')'.
		i := bytes.LastIndexByte(b, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(string(b[i+1:]))
		if len(f) < 2 {
			continue
		}
		if ppid, _ := strconv.Atoi(f[1]); ppid == pid {
			child, _ := strconv.Atoi(filepath.Base(filepath.Dir(p)))
			out = append(out, child)
		}
	}
	return out
}

// clockTicks is USER_HZ, the unit of utime and stime in /proc/<pid>/stat: 100 on every Linux architecture Go
// supports (sysconf(_SC_CLK_TCK) would need cgo).
const clockTicks = 100

// ReadCPU is the CPU time (user plus system) pid has used since it started, to 10 ms.
func ReadCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, fmt.Errorf("read CPU time of pid %d: %w (the bench needs Linux /proc)", pid, err)
	}
	// After "pid (comm) ": state is field 3, utime field 14 and stime field 15 of the whole line.
	i := bytes.LastIndexByte(b, ')')
	f := strings.Fields(string(b[i+1:]))
	if i < 0 || len(f) < 13 {
		return 0, fmt.Errorf("read CPU time of pid %d: unexpected /proc/%d/stat", pid, pid)
	}
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("read CPU time of pid %d: unexpected /proc/%d/stat", pid, pid)
	}
	return time.Duration(ut+st) * time.Second / clockTicks, nil
}

// SumCPU adds up the CPU time of several processes (nginx's master and workers).
func SumCPU(pids []int) (time.Duration, error) {
	var total time.Duration
	for _, pid := range pids {
		c, err := ReadCPU(pid)
		if err != nil {
			return 0, err
		}
		total += c
	}
	return total, nil
}

// OpenFDs counts the open file descriptors of pid.
func OpenFDs(pid int) (int, error) {
	ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		return 0, fmt.Errorf("count fds of pid %d: %w", pid, err)
	}
	return len(ents), nil
}

// peakSampler samples the summed RSS of pids every 5 ms until stop, because VmHWM is only updated by the kernel
// on some events: the figure reported is the larger of the sampled maximum and VmHWM.
type peakSampler struct {
	stop chan struct{}
	done chan int64
}

func samplePeak(pids []int) *peakSampler {
	s := &peakSampler{stop: make(chan struct{}), done: make(chan int64, 1)}
	go func() {
		var peak int64
		t := time.NewTicker(5 * time.Millisecond)
		defer t.Stop()
		for {
			if m, err := SumMemory(pids); err == nil {
				peak = max(peak, m.RSS, m.Peak)
			}
			select {
			case <-s.stop:
				s.done <- peak
				return
			case <-t.C:
			}
		}
	}()
	return s
}

// Stop ends sampling and returns the peak in bytes.
func (s *peakSampler) Stop() int64 {
	close(s.stop)
	return <-s.done
}
