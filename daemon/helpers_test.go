package daemon

import (
	"github.com/oeproxy/oeproxy/internal/simtest"
	"github.com/oeproxy/oeproxy/internal/testutil"
)

// The shared test helpers under the names this package's tests use.
type (
	fakeClock = testutil.Clock
	testEnv   = simtest.Env
)

var (
	newClock   = testutil.NewClock
	newTestEnv = simtest.New
	observed   = testutil.Observed
	logText    = testutil.LogText
	waitFor    = testutil.WaitFor
)
