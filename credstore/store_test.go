package credstore

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

func TestRoundTripEveryField(t *testing.T) {
	path := dbPath(t)
	key := newKey(t)
	s := openStore(t, path, keySource(t, key))
	want := sampleRecord(t, "mk4", 5001)
	if _, err := s.Add(want); err != nil {
		t.Fatal(err)
	}
	want.SchemaVersion = SchemaVersion
	// Every field must be set, so that a field the encoder forgets fails the comparison.
	v := reflect.ValueOf(want)
	for i := range v.NumField() {
		if v.Field(i).IsZero() {
			t.Fatalf("sample record leaves %s zero", v.Type().Field(i).Name)
		}
	}
	got, err := s.Get("mk4")
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("Get:\n got %#v\nwant %#v", fmt.Sprintf("%+v", got), fmt.Sprintf("%+v", want))
	}
	// And after closing and reopening.
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openStore(t, path, keySource(t, key))
	got, err = s.Get("mk4")
	if err != nil {
		t.Fatal(err)
	}
	type plain Record // without String/GoString, so a failure shows the fields
	if !reflect.DeepEqual(plain(got), plain(want)) {
		t.Fatalf("after reopen:\n got %+v\nwant %+v", plain(got), plain(want))
	}
}

func TestFilePermissions(t *testing.T) {
	dir := filepath.Join(privateDir(t), "data") // new: Open makes it
	path := filepath.Join(dir, FileName)
	s := openStore(t, path, keySource(t, newKey(t)))
	_ = s.Close()
	for p, want := range map[string]os.FileMode{dir: 0o700, path: 0o600} {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != want {
			t.Errorf("%s: mode %04o, want %04o", p, fi.Mode().Perm(), want)
		}
	}
	// An existing file open to others is tightened (through its descriptor, never by name).
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	s, err := Open(path, keySource(t, newKey(t)), Options{})
	if err == nil {
		_ = s.Close()
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o600 {
		t.Errorf("existing file left at %04o", fi.Mode().Perm())
	}
}

func TestRawFileHasNoSecrets(t *testing.T) {
	path := dbPath(t)
	key := newKey(t)
	s := openStore(t, path, keySource(t, key))
	var recs []Record
	for i, name := range []string{"alpha-printer", "beta", "gamma"} {
		r := sampleRecord(t, name, 6000+i)
		recs = append(recs, r)
		if _, err := s.Add(r); err != nil {
			t.Fatal(err)
		}
	}
	// An update and a delete leave old pages behind: those must hold nothing readable either.
	if err := s.Update("beta", func(r *Record) error { r.LastKnownLocalIP = "10.9.8.7"; return nil }); err != nil {
		t.Fatal(err)
	}
	if err := s.Delete("gamma"); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	needles := []string{"10.9.8.7", string(key), base64.StdEncoding.EncodeToString(key), "octoeverywhere"}
	for _, r := range recs {
		needles = append(needles, identifying(r)...)
	}
	for _, n := range needles {
		if bytes.Contains(raw, []byte(n)) || bytes.Contains(bytes.ToLower(raw), bytes.ToLower([]byte(n))) {
			t.Errorf("raw file contains %q", n)
		}
	}
	// The test must be able to fail: the same search finds a value that is in the file.
	if !bytes.Contains(raw, []byte("records")) {
		t.Fatal("search is broken: bucket name not found")
	}
}

func TestWrongKey(t *testing.T) {
	path := dbPath(t)
	s := openStore(t, path, keySource(t, newKey(t)))
	if _, err := s.Add(sampleRecord(t, "mk4", 5001)); err != nil {
		t.Fatal(err)
	}
	_ = s.Close()
	before := fileSum(t, path)
	_, err := Open(path, keySource(t, newKey(t)), Options{})
	if !errors.Is(err, ErrWrongKey) || errors.Is(err, ErrCorrupt) {
		t.Fatalf("Open with another key: %v, want ErrWrongKey", err)
	}
	for _, want := range []string{path, "not changed", EnvMasterKey} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
	_, err = Open(path, Passphrase("hunter2", Argon2Params{}), Options{})
	if !errors.Is(err, ErrWrongKey) || !strings.Contains(err.Error(), "32-byte master key") {
		t.Fatalf("Open with a passphrase: %v, want ErrWrongKey saying the store needs a master key", err)
	}
	if fileSum(t, path) != before {
		t.Fatal("a failed Open changed the file")
	}
}

func TestPassphraseSource(t *testing.T) {
	path := dbPath(t)
	s := openStore(t, path, Passphrase("correct horse", Argon2Params{}))
	want := sampleRecord(t, "mk4", 5001)
	if _, err := s.Add(want); err != nil {
		t.Fatal(err)
	}
	_ = s.Close()
	// The store remembers its argon2id parameters: other defaults do not matter when opening.
	saved := DefaultArgon2
	DefaultArgon2 = Argon2Params{Time: 2, MemoryKiB: 2048, Threads: 2}
	defer func() { DefaultArgon2 = saved }()
	s = openStore(t, path, Passphrase("correct horse", Argon2Params{}))
	if got, err := s.Get("mk4"); err != nil || got.BasicPassword != want.BasicPassword {
		t.Fatalf("Get after reopening with the passphrase: %v", err)
	}
	_ = s.Close()
	before := fileSum(t, path)
	if _, err := Open(path, Passphrase("correct horse!", Argon2Params{}), Options{}); !errors.Is(err, ErrWrongKey) {
		t.Fatalf("wrong passphrase: %v, want ErrWrongKey", err)
	}
	if _, err := Open(path, keySource(t, newKey(t)), Options{}); !errors.Is(err, ErrWrongKey) || !strings.Contains(err.Error(), EnvPassphrase) {
		t.Fatalf("raw key on a passphrase store: %v, want ErrWrongKey naming %s", err, EnvPassphrase)
	}
	if fileSum(t, path) != before {
		t.Fatal("a failed Open changed the file")
	}
}

func TestTruncatedFile(t *testing.T) {
	path := dbPath(t)
	key := newKey(t)
	s := openStore(t, path, keySource(t, key))
	for i := range 20 {
		if _, err := s.Add(sampleRecord(t, fmt.Sprintf("p%d", i), 5001+i)); err != nil {
			t.Fatal(err)
		}
	}
	_ = s.Close()
	full, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	// Cut below the high-water mark: bbolt files have unused room at the end, and cutting that loses nothing.
	var used int
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	_ = db.View(func(tx *bolt.Tx) error { used = int(tx.Size()); return nil })
	_ = db.Close()
	for _, size := range []int{used / 2, used - 4096, used - 1, 4096 + 100, 100} {
		t.Run(strconv.Itoa(size), func(t *testing.T) {
			p := filepath.Join(privateDir(t), FileName)
			if err := os.WriteFile(p, full[:size], 0o600); err != nil {
				t.Fatal(err)
			}
			before := fileSum(t, p)
			s, err := Open(p, keySource(t, key), Options{})
			if err == nil {
				// bbolt may not notice at once; reading every record must.
				_, err = s.List()
				_ = s.Close()
			}
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("truncated to %d of %d bytes: %v, want ErrCorrupt", size, len(full), err)
			}
			if !strings.Contains(err.Error(), p) || !strings.Contains(err.Error(), "not changed") {
				t.Errorf("error %q should name the file and say it was not changed", err)
			}
			if fileSum(t, p) != before {
				t.Fatal("the file changed")
			}
			// And a second attempt gives the same answer, not a lock error from a leaked descriptor.
			if _, err := Open(p, keySource(t, key), Options{LockTimeout: 100 * time.Millisecond}); errors.Is(err, ErrInUse) {
				t.Fatalf("second Open: %v", err)
			}
		})
	}
}

// rawValues reads the stored records and meta values with bbolt directly (the store must be closed).
func rawValues(t *testing.T, path string, bucket []byte) map[string][]byte {
	t.Helper()
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	out := map[string][]byte{}
	err = db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucket).ForEach(func(k, v []byte) error {
			out[string(k)] = bytes.Clone(v)
			return nil
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// rawUpdate changes the file with bbolt directly, as an attacker or a bad disk would.
func rawUpdate(t *testing.T, path string, fn func(tx *bolt.Tx) error) {
	t.Helper()
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.Update(fn); err != nil {
		t.Fatal(err)
	}
}

func TestFlippedByteInRecord(t *testing.T) {
	path := dbPath(t)
	key := newKey(t)
	s := openStore(t, path, keySource(t, key))
	if _, err := s.Add(sampleRecord(t, "mk4", 5001)); err != nil {
		t.Fatal(err)
	}
	_ = s.Close()
	var value []byte
	for _, v := range rawValues(t, path, bucketRecords) {
		value = v
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	at := bytes.Index(raw, value)
	if at < 0 || bytes.Contains(raw[at+1:], value) {
		t.Fatal("sealed record not found exactly once in the file")
	}
	raw[at+len(value)/2] ^= 0x01
	if err := os.WriteFile(path, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	before := fileSum(t, path)

	s = openStore(t, path, keySource(t, key))
	if _, err := s.Get("mk4"); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("Get of a flipped record: %v, want ErrCorrupt", err)
	}
	if _, err := s.List(); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("List: %v, want ErrCorrupt", err)
	}
	if _, err := s.Add(sampleRecord(t, "other", 5002)); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("Put beside a damaged record: %v, want ErrCorrupt", err)
	}
	_ = s.Close()
	if fileSum(t, path) != before {
		t.Fatal("the file changed")
	}
	// The way out the error message offers: the damaged record can be deleted by name.
	s = openStore(t, path, keySource(t, key))
	if err := s.Delete("mk4"); err != nil {
		t.Fatalf("Delete of the damaged record: %v", err)
	}
	if recs, err := s.List(); err != nil || len(recs) != 0 {
		t.Fatalf("List after deleting it: %v %v", recs, err)
	}
}

func TestDamagedMetaIsCorruptNotWrongKey(t *testing.T) {
	for _, field := range []string{"kdf", "kcv", "dek", "sum"} {
		t.Run(field, func(t *testing.T) {
			path := dbPath(t)
			ks := Passphrase("pw", Argon2Params{})
			s := openStore(t, path, ks)
			_ = s.Close()
			rawUpdate(t, path, func(tx *bolt.Tx) error {
				b := tx.Bucket(bucketMeta)
				v := bytes.Clone(b.Get([]byte(field)))
				v[len(v)-3] ^= 0x04
				return b.Put([]byte(field), v)
			})
			before := fileSum(t, path)
			_, err := Open(path, ks, Options{})
			if !errors.Is(err, ErrCorrupt) || errors.Is(err, ErrWrongKey) {
				t.Fatalf("damaged %s: %v, want ErrCorrupt", field, err)
			}
			if fileSum(t, path) != before {
				t.Fatal("the file changed")
			}
		})
	}
}

func TestSwappedAndReplayedRecords(t *testing.T) {
	path := dbPath(t)
	key := newKey(t)
	s := openStore(t, path, keySource(t, key))
	for i, name := range []string{"a", "b"} {
		if _, err := s.Add(sampleRecord(t, name, 5001+i)); err != nil {
			t.Fatal(err)
		}
	}
	ka, kb := s.dk.bucketKey("a"), s.dk.bucketKey("b")
	_ = s.Close()
	vals := rawValues(t, path, bucketRecords)
	va, vb := vals[string(ka)], vals[string(kb)]
	if va == nil || vb == nil {
		t.Fatal("records not found under their HMAC keys")
	}

	cases := []struct {
		name string
		set  map[string][]byte
	}{
		{"swapped", map[string][]byte{string(ka): vb, string(kb): va}},
		{"a's value replayed as b", map[string][]byte{string(kb): va}},
		{"schema version changed", map[string][]byte{string(ka): append([]byte{0}, va[1:]...)}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := filepath.Join(privateDir(t), FileName)
			src, _ := os.ReadFile(path)
			if err := os.WriteFile(p, src, 0o600); err != nil {
				t.Fatal(err)
			}
			rawUpdate(t, p, func(tx *bolt.Tx) error {
				for k, v := range c.set {
					if err := tx.Bucket(bucketRecords).Put([]byte(k), v); err != nil {
						return err
					}
				}
				return nil
			})
			s := openStore(t, p, keySource(t, key))
			_, errA := s.Get("a")
			_, errB := s.Get("b")
			if !errors.Is(errA, ErrCorrupt) && !errors.Is(errB, ErrCorrupt) {
				t.Fatalf("not detected: Get a: %v, Get b: %v", errA, errB)
			}
			if _, err := s.List(); !errors.Is(err, ErrCorrupt) {
				t.Fatalf("List: %v, want ErrCorrupt", err)
			}
		})
	}
}

func TestNamesAndPortsAreUnique(t *testing.T) {
	s := openStore(t, dbPath(t), keySource(t, newKey(t)))
	if _, err := s.Add(sampleRecord(t, "mk4", 5001)); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Add(sampleRecord(t, "voron", 5002)); err != nil {
		t.Fatal(err)
	}
	_, err := s.Add(sampleRecord(t, "mini", 5001))
	if !errors.Is(err, ErrPortTaken) || !errors.Is(err, ErrExists) || errors.Is(err, ErrNameTaken) ||
		!strings.Contains(err.Error(), `port 5001 is taken by printer "mk4"`) {
		t.Fatalf("taken port: %v", err)
	}
	if _, err := s.Add(sampleRecord(t, "mk4", 5003)); !errors.Is(err, ErrNameTaken) || !errors.Is(err, ErrExists) ||
		!strings.Contains(err.Error(), `"mk4"`) {
		t.Fatalf("taken name: %v", err)
	}
	if err := s.Update("voron", func(r *Record) error { r.Port = 5001; return nil }); !errors.Is(err, ErrPortTaken) {
		t.Fatalf("Update to a taken port: %v", err)
	}
	if err := s.Update("voron", func(r *Record) error { r.Name = "mk4"; return nil }); !errors.Is(err, ErrNameTaken) {
		t.Fatalf("rename to a taken name: %v", err)
	}
	if _, err := s.Add(sampleRecord(t, "Bad Name", 5009)); !errors.Is(err, ErrInvalid) {
		t.Fatalf("invalid name: %v", err)
	}
	if _, err := s.Add(sampleRecord(t, "big", 70000)); !errors.Is(err, ErrInvalid) {
		t.Fatalf("invalid port: %v", err)
	}
	// Defaults: the name from the printer name, de-duplicated; the next free port; route relay.
	r := sampleRecord(t, "", 0)
	r.PrinterName, r.Route = "MK4", ""
	got, err := s.Add(r)
	if err != nil {
		t.Fatal(err)
	}
	if got.Name != "mk4-2" || got.Port != 5003 || got.Route != "" {
		t.Fatalf("Add with defaults gave name %q port %d route %q", got.Name, got.Port, got.Route)
	}
	// The next port is the first free one after those taken.
	if next, err := s.Add(sampleRecord(t, "next", 0)); err != nil || next.Port != 5004 {
		t.Fatalf("Add with port 0 after 5001-5003: port %d, %v", next.Port, err)
	}
	if err := s.Delete("next"); err != nil {
		t.Fatal(err)
	}
	// Renaming and moving work and List is sorted by port.
	if err := s.Update("mk4-2", func(r *Record) error { r.Name, r.Port = "mini", 4000; return nil }); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get("mk4-2"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("old name after rename: %v", err)
	}
	recs, err := s.List()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, r := range recs {
		names = append(names, fmt.Sprintf("%s:%d", r.Name, r.Port))
	}
	if strings.Join(names, " ") != "mini:4000 mk4:5001 voron:5002" {
		t.Fatalf("List = %v", names)
	}
	// An error from the update function changes nothing.
	boom := errors.New("boom")
	if err := s.Update("mini", func(r *Record) error { r.Port = 4001; return boom }); err != boom {
		t.Fatalf("Update returned %v, want the function's error", err)
	}
	if r, _ := s.Get("mini"); r.Port != 4000 {
		t.Fatal("a failed Update changed the record")
	}
	if err := s.Delete("mini"); err != nil {
		t.Fatal(err)
	}
	if err := s.Delete("mini"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Delete twice: %v", err)
	}
	if err := s.Update("mini", func(*Record) error { return nil }); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Update of a missing printer: %v", err)
	}
}

func TestConcurrentWriters(t *testing.T) {
	s := openStore(t, dbPath(t), keySource(t, newKey(t)))
	const n = 12
	var wg sync.WaitGroup
	errs := make(chan error, 2*n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := sampleRecord(t, fmt.Sprintf("p%02d", i), 0) // Port 0: each takes the next free one
			_, err := s.Add(r)
			errs <- err
		}()
	}
	wg.Wait()
	if _, err := s.Add(sampleRecord(t, "counter", 7000)); err != nil {
		t.Fatal(err)
	}
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- s.Update("counter", func(r *Record) error {
				r.WebhookEvents = append(r.WebhookEvents, 100+i)
				return nil
			})
			if _, err := s.List(); err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	recs, err := s.List()
	if err != nil {
		t.Fatal(err)
	}
	ports := map[int]bool{}
	for _, r := range recs {
		if ports[r.Port] {
			t.Fatalf("port %d given twice", r.Port)
		}
		ports[r.Port] = true
	}
	if len(recs) != n+1 {
		t.Fatalf("%d records, want %d", len(recs), n+1)
	}
	c, _ := s.Get("counter")
	if len(c.WebhookEvents) != 3+n {
		t.Fatalf("counter has %d events, want %d: an update was lost", len(c.WebhookEvents), 3+n)
	}
}

func TestSecondOpenInProcessGetsErrInUse(t *testing.T) {
	path := dbPath(t)
	key := newKey(t)
	s := openStore(t, path, keySource(t, key))
	_, err := Open(path, keySource(t, key), Options{LockTimeout: 300 * time.Millisecond})
	want := fmt.Sprintf("store in use by another oeproxy (pid %d)", os.Getpid())
	if !errors.Is(err, ErrInUse) || !strings.Contains(err.Error(), want) {
		t.Fatalf("second Open: %v, want %q", err, want)
	}
	_ = s.Close()
	if _, err := os.Stat(path + ".pid"); !os.IsNotExist(err) {
		t.Fatalf("pid file left after Close: %v", err)
	}
	s2 := openStore(t, path, keySource(t, key))
	_ = s2.Close()
}

func TestSecondProcessGetsErrInUse(t *testing.T) {
	path := dbPath(t)
	key := newKey(t)
	s := openStore(t, path, keySource(t, key)) // create it, then hand it to the helper
	_ = s.Close()

	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), envHoldPath+"="+path, envHoldKey+"="+base64.StdEncoding.EncodeToString(key))
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = stdin.Close(); _ = cmd.Wait() }()
	line := make([]byte, 6)
	if _, err := stdout.Read(line); err != nil || string(line) != "ready\n" {
		t.Fatalf("helper did not get ready: %q %v; stderr: %s", line, err, stderr.String())
	}

	done := make(chan error, 1)
	go func() {
		_, err := Open(path, keySource(t, key), Options{}) // the default one-second timeout
		done <- err
	}()
	select {
	case err = <-done:
	case <-time.After(30 * time.Second): // a deadline, not a speed check: without a timeout Open would hang
		t.Fatal("Open hangs while another process holds the store")
	}
	want := fmt.Sprintf("store in use by another oeproxy (pid %d)", cmd.Process.Pid)
	if !errors.Is(err, ErrInUse) || !strings.Contains(err.Error(), want) {
		t.Fatalf("Open while another process holds it: %v, want %q", err, want)
	}
	_ = stdin.Close()
	if err := cmd.Wait(); err != nil {
		t.Fatalf("helper: %v; stderr: %s", err, stderr.String())
	}
	s = openStore(t, path, keySource(t, key)) // free again once the holder exits
	_ = s.Close()
}

func TestAddReturnsWhatGetReturns(t *testing.T) {
	dataDir := privateDir(t)
	s := openStore(t, dataDir, keySource(t, newKey(t))) // a directory is taken as the data dir
	if s.Path() != DefaultPath(dataDir) {
		t.Fatalf("Path %q, want %q", s.Path(), DefaultPath(dataDir))
	}
	r := sampleRecord(t, "mk4", 0)
	zone := time.FixedZone("CEST", 2*3600)
	r.CreatedAt, r.WebhookSetAt = time.Now().In(zone), time.Now().In(zone)
	added, err := s.Add(r)
	if err != nil {
		t.Fatal(err)
	}
	got, err := s.Get("mk4")
	if err != nil {
		t.Fatal(err)
	}
	type plain Record
	if !reflect.DeepEqual(plain(added), plain(got)) {
		t.Fatalf("Add returned\n%+v\nGet returns\n%+v", plain(added), plain(got))
	}
	if !got.CreatedAt.Equal(r.CreatedAt) || got.Port != 5001 {
		t.Fatalf("CreatedAt %v (want %v), port %d", got.CreatedAt, r.CreatedAt, got.Port)
	}
}

// One App Connection is stored once: a second copy under another name or port is refused, naming the first.
func TestAddRefusesASecondCopyOfAnAppConnection(t *testing.T) {
	s := openStore(t, dbPath(t), keySource(t, newKey(t)))
	r := sampleRecord(t, "mk4", 5001)
	if _, err := s.Add(r); err != nil {
		t.Fatal(err)
	}
	dup := r
	dup.Name, dup.Port = "mk4-again", 5002
	_, err := s.Add(dup)
	if !errors.Is(err, ErrDuplicate) || !errors.Is(err, ErrExists) || !strings.Contains(err.Error(), `"mk4"`) {
		t.Fatalf("second copy: %v, want ErrDuplicate naming \"mk4\"", err)
	}
	dup.Name, dup.Port = "", 0
	if _, err := s.Add(dup); !errors.Is(err, ErrDuplicate) {
		t.Fatalf("second copy with a generated name: %v, want ErrDuplicate", err)
	}
	if recs, _ := s.List(); len(recs) != 1 {
		t.Fatalf("%d records stored, want 1", len(recs))
	}
	// Updating the record itself is not a copy.
	if err := s.Update("mk4", func(r *Record) error { r.Port = 5003; return nil }); err != nil {
		t.Fatalf("Update of the only copy: %v", err)
	}
}

// One record that does not authenticate hides none of the others: Scan returns them and names the damaged one
// by a stand-in that Get explains and Delete removes.
func TestScanServesGoodRecordsBesideADamagedOne(t *testing.T) {
	path := dbPath(t)
	key := newKey(t)
	s := openStore(t, path, keySource(t, key))
	for i, name := range []string{"alpha", "beta", "gamma"} {
		if _, err := s.Add(sampleRecord(t, name, 5001+i)); err != nil {
			t.Fatal(err)
		}
	}
	var bkey []byte
	s.view(func(tx *bolt.Tx) error { bkey = s.dk.bucketKey("beta"); return nil })
	_ = s.Close()
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketRecords)
		v := bytes.Clone(b.Get(bkey))
		v[len(v)/2] ^= 0x01
		return b.Put(bkey, v)
	}); err != nil {
		t.Fatal(err)
	}
	_ = db.Close()

	s = openStore(t, path, keySource(t, key))
	good, bad, err := s.Scan()
	if err != nil {
		t.Fatalf("Scan: %v", err)
	}
	if len(good) != 2 || good[0].Name != "alpha" || good[1].Name != "gamma" {
		t.Fatalf("Scan good: %v", good)
	}
	if len(bad) != 1 || !strings.HasPrefix(bad[0].Name, "damaged-") || !strings.Contains(bad[0].Error(), "oeproxy remove "+bad[0].Name) {
		t.Fatalf("Scan damaged: %+v", bad)
	}
	if _, err := s.List(); !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), bad[0].Name) {
		t.Fatalf("List: %v, want ErrCorrupt naming %s", err, bad[0].Name)
	}
	if _, err := s.Get(bad[0].Name); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("Get of the stand-in: %v, want ErrCorrupt", err)
	}
	if err := s.Delete(bad[0].Name); err != nil {
		t.Fatalf("Delete of the stand-in: %v", err)
	}
	if recs, err := s.List(); err != nil || len(recs) != 2 {
		t.Fatalf("List after removing the damaged record: %v %v", recs, err)
	}
}
