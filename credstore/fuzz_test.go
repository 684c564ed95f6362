package credstore

import (
	"bytes"
	"reflect"
	"testing"
)

// fuzzKeys is a fixed data key, so that seeds sealed under it stay valid inputs.
func fuzzKeys(t testing.TB) *dataKeys {
	dk, err := deriveDataKeys(bytes.Repeat([]byte{7}, keySize))
	if err != nil {
		t.Fatal(err)
	}
	return dk
}

// FuzzDecodeRecord feeds arbitrary bytes to the sealed-record decoder and to the plaintext decoder behind it.
// Neither may panic, and a plaintext that decodes must survive sealing and opening unchanged.
func FuzzDecodeRecord(f *testing.F) {
	dk := fuzzKeys(f)
	r := sampleRecord(f, "mk4", 5001)
	_, sealed, err := dk.sealRecord(r)
	if err != nil {
		f.Fatal(err)
	}
	plain, err := encodeRecord(r)
	if err != nil {
		f.Fatal(err)
	}
	for _, seed := range [][]byte{
		sealed, sealed[:len(sealed)/2], {SchemaVersion}, {}, {0}, {255, 1, 2},
		plain, bytes.TrimRight(plain, " "), []byte(`{"n":"x","port":1,"route":"lan"}`),
		[]byte(`{"n":"x","port":0}`), []byte(`{"n":"x","port":1,"route":"relay"} {}`), []byte(`null`),
		[]byte(`{"n":"x","port":1,"route":"relay","we":[1e400]}`), []byte(`{"ct":"not a time"}`),
		[]byte(`{"n":"x","port":1,"route":"relay","we":[]}`),
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		bkey := dk.bucketKey("mk4")
		if got, err := dk.openRecord(bkey, data); err == nil && got.Name != "mk4" {
			t.Fatalf("opened a record named %q under the key of mk4", got.Name)
		}
		rec, err := decodeRecord(data)
		if err != nil {
			return
		}
		k, v, err := dk.sealRecord(rec)
		if err != nil {
			t.Fatalf("a decoded record does not seal: %v", err)
		}
		back, err := dk.openRecord(k, v)
		if err != nil {
			t.Fatalf("a sealed record does not open: %v", err)
		}
		type plain Record
		back, rec = normalised(back), normalised(rec)
		if !reflect.DeepEqual(plain(back), plain(rec)) && !timesOnlyDiffer(back, rec) {
			t.Fatalf("round trip changed the record:\n%+v\n%+v", plain(back), plain(rec))
		}
	})
}

// normalised is r with what JSON cannot tell apart made equal: an empty list of webhook events is omitted on
// disk and comes back as none.
func normalised(r Record) Record {
	if len(r.WebhookEvents) == 0 {
		r.WebhookEvents = nil
	}
	return r
}

// timesOnlyDiffer allows what JSON does to times (a zone name becomes an offset) while the instants agree.
func timesOnlyDiffer(a, b Record) bool {
	if !a.CreatedAt.Equal(b.CreatedAt) || !a.WebhookSetAt.Equal(b.WebhookSetAt) {
		return false
	}
	a.CreatedAt, a.WebhookSetAt = b.CreatedAt, b.WebhookSetAt
	type plain Record
	return reflect.DeepEqual(plain(a), plain(b))
}
