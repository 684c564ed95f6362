package reliability

import (
	"context"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/oeproxy/oeproxy/bench"
)

// The oeproxy binary is built once for the suite: each build costs CI most of a minute.
var built struct {
	once sync.Once
	dir  string
	bin  string
	err  error
}

// binaryUnderTest starts the bench environment (oesim and the origin) and prepares, without starting, an
// oeproxy of the built binary configured for it; the context ends after timeout. Both are closed when t ends,
// and the environment's secrets join the suite's secrets check.
func binaryUnderTest(t *testing.T, timeout time.Duration) (context.Context, *bench.Env, *bench.OEProxy) {
	t.Helper()
	if testing.Short() {
		t.Skip("builds and runs the oeproxy binary")
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	t.Cleanup(cancel)
	built.once.Do(func() {
		if built.dir, built.err = os.MkdirTemp("", "oeproxy-reliability-"); built.err != nil {
			return
		}
		built.bin = filepath.Join(built.dir, "oeproxy")
		built.err = bench.BuildOEProxy(context.Background(), built.bin)
	})
	if built.err != nil {
		t.Fatal(built.err)
	}
	env, err := bench.StartEnv(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(env.Close)
	registerSecrets(env.Secrets(), nil)
	oe, err := bench.NewOEProxy(ctx, built.bin, env)
	if err != nil {
		t.Fatal(err)
	}
	return ctx, env, oe
}
