package daemon

import (
	"strings"
	"testing"

	"github.com/oeproxy/oeproxy/credstore"
)

// A second printer whose name slugs to 63 characters gets a suffixed name that still fits the one name rule.
func TestUniqueNameFitsTheRule(t *testing.T) {
	long := strings.Repeat("a", credstore.MaxNameLen)
	existing := []credstore.Record{{Name: long}}
	got := uniqueName(long, existing)
	if err := credstore.ValidateName(got); err != nil || got == long || !strings.HasSuffix(got, "-2") {
		t.Errorf("uniqueName = %q (%v)", got, err)
	}
}
