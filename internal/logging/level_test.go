package logging

import (
	"bytes"
	"strings"
	"testing"

	"go.uber.org/zap/zapcore"
)

func TestNewWithLevelChangesAtRuntime(t *testing.T) {
	var buf bytes.Buffer
	log, level, err := NewWithLevel("warn", "json", &buf)
	if err != nil {
		t.Fatal(err)
	}
	log.Info("hidden")
	level.SetLevel(zapcore.DebugLevel)
	log.Debug("shown")
	if out := buf.String(); strings.Contains(out, "hidden") || !strings.Contains(out, "shown") {
		t.Errorf("log output %q", out)
	}
	if _, _, err := NewWithLevel("loud", "json", &buf); err == nil || !strings.Contains(err.Error(), "log.level") {
		t.Errorf("bad level: %v", err)
	}
}
