package oesim

import (
	"crypto/rand"
	"math/big"
)

const (
	lowerAlnum = "abcdefghijklmnopqrstuvwxyz0123456789"
	upperAlnum = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
	mixedAlnum = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
	upperHex   = "0123456789ABCDEF"
)

// randomString returns n characters drawn uniformly from alphabet with crypto/rand. Every secret the sim hands
// out comes from here, so two portal runs never share a value (tests of "fresh secrets" rely on it).
func randomString(n int, alphabet string) string {
	max := big.NewInt(int64(len(alphabet)))
	b := make([]byte, n)
	for i := range b {
		v, err := rand.Int(rand.Reader, max)
		if err != nil {
			// crypto/rand does not fail on supported platforms (Go 1.24+ panics inside Read instead).
			panic("oesim: crypto/rand failed: " + err.Error())
		}
		b[i] = alphabet[v.Int64()]
	}
	return string(b)
}
