package control

// Sentinels are the errors that cross the control socket by name, for the tests that check each one.
var Sentinels = func() []error {
	var out []error
	for _, k := range errorKinds {
		out = append(out, k.err)
	}
	return out
}()
