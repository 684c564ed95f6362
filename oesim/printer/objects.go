package printer

import (
	"net/http"
	"slices"
	"strings"
)

// objectNames are the Klipper printer objects the simulation knows.
var objectNames = []string{"webhooks", "print_stats", "extruder", "heater_bed", "virtual_sdcard", "display_status", "toolhead"}

// printerObjects returns every known object with all its fields, Klipper-shaped.
func (m *Moonraker) printerObjects() map[string]map[string]any {
	s := m.machine.snapshot()
	tool, toolT, bed, bedT := s.temps()
	state := "standby"
	switch {
	case s.Paused:
		state = "paused"
	case s.Printing:
		state = "printing"
	}
	progress := 0.0
	if s.Printing {
		progress = 0.01
	}
	return map[string]map[string]any{
		"webhooks":       {"state": "ready", "state_message": "Printer is ready"},
		"print_stats":    {"filename": s.File, "total_duration": s.PrintTime, "print_duration": s.PrintTime, "filament_used": 0.0, "state": state, "message": "", "info": map[string]any{"total_layer": nil, "current_layer": nil}},
		"extruder":       {"temperature": tool, "target": toolT, "power": 0.0, "pressure_advance": 0.04, "smooth_time": 0.04},
		"heater_bed":     {"temperature": bed, "target": bedT, "power": 0.0},
		"virtual_sdcard": {"file_path": nil, "progress": progress, "is_active": s.Printing && !s.Paused, "file_position": 0, "file_size": s.Size},
		"display_status": {"progress": progress, "message": nil},
		"toolhead":       {"homed_axes": "xyz", "position": []float64{150, 150, 10, 0}, "print_time": s.Uptime, "estimated_print_time": s.Uptime, "max_velocity": 300.0, "max_accel": 3000.0},
	}
}

// eventtime is Klipper's monotonic clock, in seconds.
func (m *Moonraker) eventtime() float64 { return 1000 + m.machine.snapshot().Uptime }

// queryObjects answers printer.objects.query: for each requested object, the listed fields,
// or all fields when the list is nil/empty. Unknown objects are left out, as Klipper does.
func (m *Moonraker) queryObjects(req map[string][]string) map[string]any {
	all := m.printerObjects()
	status := map[string]any{}
	for name, fields := range req {
		obj, ok := all[name]
		if !ok {
			continue
		}
		if len(fields) == 0 {
			status[name] = obj
			continue
		}
		sel := map[string]any{}
		for k, v := range obj {
			if slices.Contains(fields, k) {
				sel[k] = v
			}
		}
		status[name] = sel
	}
	return status
}

// queryHTTP parses /printer/objects/query?extruder&print_stats=state,filename.
func (m *Moonraker) queryHTTP(r *http.Request) (any, error) {
	if err := r.ParseForm(); err != nil {
		return nil, &rpcError{Code: http.StatusBadRequest, Message: err.Error()}
	}
	req := map[string][]string{}
	for name, vals := range r.Form {
		var fields []string
		for _, v := range vals {
			for _, f := range strings.Split(v, ",") {
				if f = strings.TrimSpace(f); f != "" {
					fields = append(fields, f)
				}
			}
		}
		req[name] = fields
	}
	return map[string]any{"eventtime": m.eventtime(), "status": m.queryObjects(req)}, nil
}
