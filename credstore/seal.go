package credstore

import (
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"

	"golang.org/x/crypto/chacha20poly1305"
)

// keySize is the size of every key here: master key, KEK, DEK and the keys derived from the DEK.
const keySize = chacha20poly1305.KeySize

// Associated data and constants of the sealed meta values. Changing one makes existing stores unreadable.
var (
	adDEK       = []byte("oeproxy credstore dek v1")
	adKCV       = []byte("oeproxy credstore key check v1")
	kcvConstant = []byte("oeproxy credstore: the master key is right")
	adRecord    = []byte("oeproxy credstore record")
)

// errOpen is the AEAD's authentication failure, kept generic: the caller knows what failed to open.
var errOpen = errors.New("authentication failed")

// seal encrypts plain under key with XChaCha20-Poly1305 and a random 24-byte nonce: nonce || ciphertext.
// Random nonces of this size are safe for any number of messages, so no counter has to survive a crash.
func seal(key, plain, ad []byte) ([]byte, error) {
	aead, err := chacha20poly1305.NewX(key)
	if err != nil {
		return nil, err
	}
	out := make([]byte, aead.NonceSize(), aead.NonceSize()+len(plain)+aead.Overhead())
	if _, err := rand.Read(out); err != nil {
		return nil, err
	}
	return aead.Seal(out, out, plain, ad), nil
}

// open reverses seal.
func open(key, sealed, ad []byte) ([]byte, error) {
	aead, err := chacha20poly1305.NewX(key)
	if err != nil {
		return nil, err
	}
	if len(sealed) < aead.NonceSize()+aead.Overhead() {
		return nil, errOpen
	}
	plain, err := aead.Open(nil, sealed[:aead.NonceSize()], sealed[aead.NonceSize():], ad)
	if err != nil {
		return nil, errOpen
	}
	return plain, nil
}

// dataKeys are the working keys derived from one DEK: one seals records, the other names them.
type dataKeys struct {
	record []byte // XChaCha20-Poly1305 key for records
	name   []byte // HMAC-SHA256 key for bucket keys
}

func deriveDataKeys(dek []byte) (*dataKeys, error) {
	rk, err := hkdf.Key(sha256.New, dek, nil, "oeproxy credstore record key v1", keySize)
	if err != nil {
		return nil, err
	}
	nk, err := hkdf.Key(sha256.New, dek, nil, "oeproxy credstore name key v1", keySize)
	if err != nil {
		return nil, err
	}
	return &dataKeys{record: rk, name: nk}, nil
}

// bucketKey is the key a record is stored under: an HMAC of its name, so the file does not reveal names.
func (k *dataKeys) bucketKey(name string) []byte {
	m := hmac.New(sha256.New, k.name)
	m.Write([]byte(name))
	return m.Sum(nil)
}

// recordAD binds a sealed record to its name (through the bucket key) and to its schema version.
func recordAD(version byte, bkey []byte) []byte {
	ad := append([]byte{}, adRecord...)
	ad = append(ad, version)
	return append(ad, bkey...)
}

// sealRecord returns the bucket key and the sealed value of r.
func (k *dataKeys) sealRecord(r Record) (bkey, value []byte, err error) {
	plain, err := encodeRecord(r)
	if err != nil {
		return nil, nil, err
	}
	bkey = k.bucketKey(r.Name)
	ct, err := seal(k.record, plain, recordAD(SchemaVersion, bkey))
	if err != nil {
		return nil, nil, err
	}
	return bkey, append([]byte{SchemaVersion}, ct...), nil
}

// openRecord authenticates and decodes a value stored under bkey. It must never panic, whatever the input
// (FuzzDecodeRecord). Errors say what failed without any record content.
func (k *dataKeys) openRecord(bkey, value []byte) (Record, error) {
	if len(value) == 0 {
		return Record{}, errors.New("record is empty")
	}
	if v := value[0]; v != SchemaVersion {
		if v > SchemaVersion {
			return Record{}, fmt.Errorf("record has schema version %d, newer than this oeproxy knows (%d): upgrade oeproxy",
				v, SchemaVersion)
		}
		return Record{}, fmt.Errorf("record has unknown schema version %d", v)
	}
	plain, err := open(k.record, value[1:], recordAD(value[0], bkey))
	if err != nil {
		return Record{}, fmt.Errorf("record does not authenticate (damaged, or moved from another name): %w", err)
	}
	r, err := decodeRecord(plain)
	if err != nil {
		return Record{}, err
	}
	// The AD already binds the bucket key; checking the name against it too catches a record sealed under a
	// bucket key that does not match its own name.
	if !hmac.Equal(k.bucketKey(r.Name), bkey) {
		return Record{}, errors.New("record name does not match its key")
	}
	return r, nil
}

func randomKey() ([]byte, error) {
	k := make([]byte, keySize)
	if _, err := rand.Read(k); err != nil {
		return nil, fmt.Errorf("reading random bytes for a key: %w", err)
	}
	return k, nil
}
