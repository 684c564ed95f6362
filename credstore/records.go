package credstore

import (
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"

	bolt "go.etcd.io/bbolt"
)

// entry is a decrypted record with its bucket key.
type entry struct {
	key []byte
	rec Record
}

// Damaged is a stored record that cannot be read (it does not authenticate, or does not decode): a bit flipped
// on disk, or a value copied in from elsewhere. Its name is sealed with it, so it is known by a stand-in.
type Damaged struct {
	// Name is "damaged-" and the start of the record's (hashed) key: Delete and Get accept it.
	Name string
	// Cause says what failed, without any record content.
	Cause string
}

// damagedPrefix starts the stand-in name of a damaged record.
const damagedPrefix = "damaged-"

func damagedName(bkey []byte) string {
	return damagedPrefix + hex.EncodeToString(bkey[:min(len(bkey), 6)])
}

// Fix says how to get rid of the damaged record.
func (d Damaged) Fix() string {
	return fmt.Sprintf("remove it with `oeproxy remove %s`, then connect that printer again with `oeproxy connect` "+
		"(and revoke its old App Connection on the OctoEverywhere website)", d.Name)
}

// Error is the whole message, for a log line or an error.
func (d Damaged) Error() string {
	return fmt.Sprintf("printer record %s cannot be read (%s): %s", d.Name, d.Cause, d.Fix())
}

// scan decrypts every record; those that fail are returned apart, so that one damaged record does not hide the
// others.
func (s *Store) scan(tx *bolt.Tx, dk *dataKeys) ([]entry, []Damaged, error) {
	b := tx.Bucket(bucketRecords)
	if b == nil {
		return nil, nil, corruptErr(s.path, errors.New("its records bucket is missing"))
	}
	var out []entry
	var bad []Damaged
	err := b.ForEach(func(k, v []byte) error {
		r, err := dk.openRecord(k, v)
		if err != nil {
			bad = append(bad, Damaged{Name: damagedName(k), Cause: err.Error()})
			return nil
		}
		out = append(out, entry{key: bytes.Clone(k), rec: r})
		return nil
	})
	return out, bad, err
}

// readAll decrypts every record; any that fails makes the whole read fail with ErrCorrupt, naming it.
func (s *Store) readAll(tx *bolt.Tx, dk *dataKeys) ([]entry, error) {
	all, bad, err := s.scan(tx, dk)
	if err == nil && len(bad) > 0 {
		err = damagedRecordsErr(s.path, bad)
	}
	return all, err
}

func damagedRecordsErr(path string, bad []Damaged) error {
	msgs := make([]string, len(bad))
	for i, d := range bad {
		msgs[i] = d.Error()
	}
	return newErr(ErrCorrupt, nil, fmt.Sprintf("%s: %s", path, strings.Join(msgs, "; ")))
}

// Add stores a new printer and returns it as stored. An empty Name becomes Slug(PrinterName) (with -2, -3, ...
// when taken); a zero Port the first free port from Options.PortBase; an empty Route stays empty (the config key route); a zero CreatedAt
// now. A given name or port that is taken is refused (ErrNameTaken, ErrPortTaken) naming its owner.
func (s *Store) Add(r Record) (Record, error) {
	if r.Name != "" {
		if err := ValidateName(r.Name); err != nil {
			return Record{}, err
		}
	}
	if r.CreatedAt.IsZero() {
		r.CreatedAt = s.opts.Now()
	}
	normalize(&r)
	s.mu.RLock()
	defer s.mu.RUnlock()
	err := s.update(func(tx *bolt.Tx) error {
		all, err := s.readAll(tx, s.dk) // nothing is written while a record is damaged: the user decides first
		if err != nil {
			return err
		}
		if r.Name == "" {
			r.Name = uniqueName(Slug(r.PrinterName), all)
		}
		if r.Port == 0 {
			if r.Port = nextFree(all, s.opts.PortBase); r.Port == 0 {
				return newErr(ErrPortTaken, nil, fmt.Sprintf("no free port from %d up", s.opts.PortBase))
			}
		}
		return s.write(tx, nil, r, all)
	})
	if err != nil {
		return Record{}, err
	}
	return r, nil
}

// write validates r, checks that its name and port are free among all (except the record under oldKey, the
// one being replaced), and stores it.
func (s *Store) write(tx *bolt.Tx, oldKey []byte, r Record, all []entry) error {
	if err := r.validate(); err != nil {
		return err
	}
	for _, e := range all {
		if oldKey != nil && bytes.Equal(e.key, oldKey) {
			continue
		}
		if e.rec.Name == r.Name {
			return newErr(ErrNameTaken, nil, fmt.Sprintf("a printer named %q exists (port %d): choose another name, "+
				"or remove it first with `oeproxy remove %s`", r.Name, e.rec.Port, r.Name))
		}
		if e.rec.Port == r.Port {
			return newErr(ErrPortTaken, nil, fmt.Sprintf("port %d is taken by printer %q: choose another port", r.Port, e.rec.Name))
		}
		if r.ConnectionID != "" && e.rec.ConnectionID == r.ConnectionID {
			// Two records of one App Connection would be two ports with the same credentials, and removing one
			// would leave the other working after the user thinks it is gone.
			return newErr(ErrDuplicate, nil, fmt.Sprintf("this App Connection (%s) is stored already as printer %q (port %d): "+
				"use that printer, or remove it first with `oeproxy remove %s`", r.ConnectionID, e.rec.Name, e.rec.Port, e.rec.Name))
		}
		if r.MQTTPort != 0 && (e.rec.MQTTPort == r.MQTTPort || e.rec.Port == r.MQTTPort) ||
			e.rec.MQTTPort != 0 && e.rec.MQTTPort == r.Port {
			return newErr(ErrPortTaken, nil, fmt.Sprintf("port %d is taken by printer %q (its HTTP or MQTT port): choose another port", r.MQTTPort, e.rec.Name))
		}
		if r.LoopbackIP != "" && e.rec.LoopbackIP == r.LoopbackIP {
			return newErr(ErrPortTaken, nil, fmt.Sprintf("loopback address %s is taken by printer %q", r.LoopbackIP, e.rec.Name))
		}
	}
	bkey, value, err := s.dk.sealRecord(r)
	if err != nil {
		return err
	}
	b := tx.Bucket(bucketRecords)
	if oldKey != nil && !bytes.Equal(oldKey, bkey) {
		if err := b.Delete(oldKey); err != nil {
			return err
		}
	}
	return b.Put(bkey, value)
}

// normalize fills defaults and puts times in the form they come back from the file (UTC, no monotonic
// reading), so that what Add returns equals what Get returns.
func normalize(r *Record) {
	r.CreatedAt = r.CreatedAt.Round(0).UTC()
	r.WebhookSetAt = r.WebhookSetAt.Round(0).UTC()
	r.SchemaVersion = SchemaVersion
}

func uniqueName(base string, all []entry) string {
	taken := map[string]bool{}
	for _, e := range all {
		taken[e.rec.Name] = true
	}
	name := base
	for i := 2; taken[name]; i++ {
		suffix := "-" + strconv.Itoa(i)
		name = strings.TrimRight(base[:min(len(base), MaxNameLen-len(suffix))], "-") + suffix
	}
	return name
}

func nextFree(all []entry, base int) int {
	used := map[int]bool{}
	for _, e := range all {
		used[e.rec.Port] = true
	}
	for p := base; p <= 65535; p++ {
		if !used[p] {
			return p
		}
	}
	return 0
}

// Update changes the printer called name in one transaction: fn gets a copy to modify; an error from fn is
// returned as is and changes nothing. Renaming and changing the port are checked like Add. fn runs inside the
// store's write transaction and must not call the Store.
func (s *Store) Update(name string, fn func(*Record) error) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.update(func(tx *bolt.Tx) error {
		bkey := s.dk.bucketKey(name)
		v := tx.Bucket(bucketRecords).Get(bkey)
		if v == nil {
			return notFoundErr(name)
		}
		r, err := s.dk.openRecord(bkey, v)
		if err != nil {
			return corruptErr(s.path, fmt.Errorf("printer %q: %w", name, err))
		}
		if err := fn(&r); err != nil {
			return err
		}
		normalize(&r)
		all, err := s.readAll(tx, s.dk)
		if err != nil {
			return err
		}
		return s.write(tx, bkey, r, all)
	})
}

func notFoundErr(name string) error {
	return newErr(ErrNotFound, nil, fmt.Sprintf("no printer named %q: `oeproxy list` shows the names", name))
}

// Get returns the printer called name (ErrNotFound when there is none).
func (s *Store) Get(name string) (Record, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	var r Record
	err := s.view(func(tx *bolt.Tx) error {
		bkey := s.dk.bucketKey(name)
		v := tx.Bucket(bucketRecords).Get(bkey)
		if v == nil {
			if _, d := s.findDamaged(tx, name); d != nil {
				return newErr(ErrCorrupt, nil, d.Error())
			}
			return notFoundErr(name)
		}
		var err error
		if r, err = s.dk.openRecord(bkey, v); err != nil {
			d := Damaged{Name: name, Cause: err.Error()}
			return newErr(ErrCorrupt, err, d.Error())
		}
		return nil
	})
	return r, err
}

// findDamaged finds the damaged record whose stand-in name is name, or nil.
func (s *Store) findDamaged(tx *bolt.Tx, name string) ([]byte, *Damaged) {
	if !strings.HasPrefix(name, damagedPrefix) {
		return nil, nil
	}
	var key []byte
	var found *Damaged
	_ = tx.Bucket(bucketRecords).ForEach(func(k, v []byte) error {
		if damagedName(k) != name {
			return nil
		}
		if _, err := s.dk.openRecord(k, v); err != nil {
			key, found = bytes.Clone(k), &Damaged{Name: name, Cause: err.Error()}
		}
		return nil
	})
	return key, found
}

// Scan returns every printer that can be read, sorted by port, and apart from them each record that cannot: a
// daemon serves the good ones and reports the others. The error is for the store as a whole.
func (s *Store) Scan() ([]Record, []Damaged, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	var all []entry
	var bad []Damaged
	err := s.view(func(tx *bolt.Tx) (err error) {
		all, bad, err = s.scan(tx, s.dk)
		return err
	})
	if err != nil {
		return nil, nil, err
	}
	out := make([]Record, len(all))
	for i, e := range all {
		out[i] = e.rec
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Port < out[j].Port })
	sort.Slice(bad, func(i, j int) bool { return bad[i].Name < bad[j].Name })
	return out, bad, nil
}

// List returns every printer, sorted by port; a record that cannot be read makes it fail with ErrCorrupt (Scan
// returns the others).
func (s *Store) List() ([]Record, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	var all []entry
	err := s.view(func(tx *bolt.Tx) (err error) {
		all, err = s.readAll(tx, s.dk)
		return err
	})
	if err != nil {
		return nil, err
	}
	out := make([]Record, len(all))
	for i, e := range all {
		out[i] = e.rec
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Port < out[j].Port })
	return out, nil
}

// Delete forgets the printer called name (ErrNotFound when there is none). It works even when that record is
// damaged, since it does not need to decrypt it, and takes the stand-in name of a Damaged record too.
func (s *Store) Delete(name string) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketRecords)
		bkey := s.dk.bucketKey(name)
		if b.Get(bkey) == nil {
			if k, _ := s.findDamaged(tx, name); k != nil {
				bkey = k
			} else {
				return notFoundErr(name)
			}
		}
		return b.Delete(bkey)
	})
}
