package credstore_test

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/oeproxy/oeproxy/credstore"
)

// A store in a data dir, with the master key from the usual sources (here: a key file created on first use),
// one printer added from a portal completion, and the list that `oeproxy list --json` prints.
func Example() {
	dataDir, err := os.MkdirTemp("", "oeproxy-example")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dataDir)

	keys, err := credstore.ResolveKey(func(string) string { return "" }, "", dataDir)
	if err != nil {
		panic(err)
	}
	store, err := credstore.Open(credstore.DefaultPath(dataDir), keys, credstore.Options{})
	if err != nil {
		panic(err)
	}
	defer store.Close()
	fmt.Println("new key file:", filepath.Base(store.KeyFileCreated()))

	rec, err := store.Add(credstore.Record{ // Name and Port left empty: a slug of the printer name, the next free port
		ConnectionID:  "c0ffee",
		URL:           "https://app-0123456789abcdefghijklmnopqrstuv.octoeverywhere.com",
		BasicUser:     "user",
		BasicPassword: "password",
		AppAPIToken:   "token",
		PrinterName:   "Prusa MK4",
		Route:         credstore.RouteRelay, // empty: the config key route
		CreatedAt:     time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC),
	})
	if err != nil {
		panic(err)
	}
	fmt.Println("stored:", rec.Name, rec.Port)

	if _, err := store.Add(credstore.Record{Name: "other", URL: rec.URL, Port: rec.Port}); err != nil {
		fmt.Println("refused:", err)
	}

	list, err := store.List()
	if err != nil {
		panic(err)
	}
	out, _ := json.MarshalIndent(list[0].Public(), "", "  ")
	fmt.Println(string(out))
	// Output:
	// new key file: master.key
	// stored: prusa-mk4 5001
	// refused: port 5001 is taken by printer "prusa-mk4": choose another port
	// {
	//   "name": "prusa-mk4",
	//   "port": 5001,
	//   "local_url": "http://127.0.0.1:5001",
	//   "route": "relay",
	//   "active_route": "none",
	//   "printer_name": "Prusa MK4",
	//   "app_connection_id": "c0ffee",
	//   "relay_host": "app-0123456789abcdefghijklmnopqrstuv.octoeverywhere.com",
	//   "created_at": "2025-01-02T03:04:05Z",
	//   "printer_id": "",
	//   "has_octoprint_api_key": false,
	//   "webhook_set_at": null,
	//   "platform": "",
	//   "has_front_api_key": false
	// }
}
