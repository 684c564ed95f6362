package bench

import (
	"context"
	"testing"
)

// TestMeasureLAN proves the LAN figures can be taken (it never judges them: figures belong to make bench).
func TestMeasureLAN(t *testing.T) {
	f, err := MeasureLAN(context.Background(), 20)
	if err != nil {
		t.Fatal(err)
	}
	if f.LANGet <= 0 || f.RelayGet <= 0 || f.PrinterGet <= 0 || f.Fallback <= 0 || f.LANUpload <= 0 || f.RelayUpload <= 0 || f.PrinterUpload <= 0 ||
		f.LANWSRoundTrip <= 0 || f.RelayWSRTT <= 0 || f.PrinterWSRoundTrip <= 0 {
		t.Fatalf("figures missing: %+v", f)
	}
	t.Log(f)
}
