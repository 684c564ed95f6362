package printer

import "net/http"

// NewCompanionAPI is the OctoEverywhere companion's optional local web API (Bambu, Elegoo,
// PrusaLink and Docker companions, research §6.3): GET on any path answers the printer id.
func NewCompanionAPI(printerID string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{
			"PluginId": printerID, "IsConnectedToOctoEverywhere": true,
			"IsConnectedToPrinter": true, "IsAccountLinked": true,
		})
	})
}
