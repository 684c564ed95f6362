// Package version holds the build's version stamp, set with -ldflags by `make build` and `make release`.
package version

import (
	"fmt"
	"runtime"
	"runtime/debug"
)

// Set by -ldflags "-X github.com/oeproxy/oeproxy/internal/version.Version=... -X ...Commit=... -X ...Date=...".
var (
	Version = "dev"
	Commit  = ""
	Date    = ""
)

// Info is what `oeproxy version --json` prints.
type Info struct {
	Version   string `json:"version"`
	Commit    string `json:"commit"`
	Date      string `json:"date,omitempty"`
	GoVersion string `json:"go_version"`
	Platform  string `json:"platform"`
}

// Get returns the stamp, falling back to the module build info for commit when not stamped.
func Get() Info {
	i := Info{Version: Version, Commit: Commit, Date: Date, GoVersion: runtime.Version(), Platform: runtime.GOOS + "/" + runtime.GOARCH}
	if i.Commit == "" {
		if bi, ok := debug.ReadBuildInfo(); ok {
			for _, s := range bi.Settings {
				if s.Key == "vcs.revision" {
					i.Commit = s.Value
				}
			}
		}
	}
	if i.Commit == "" {
		i.Commit = "unknown"
	}
	return i
}

func (i Info) String() string {
	s := fmt.Sprintf("oeproxy %s (commit %s, %s, %s)", i.Version, i.Commit, i.GoVersion, i.Platform)
	if i.Date != "" {
		s += " built " + i.Date
	}
	return s
}
