package persistence

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
)

// A backup file is badger's backup stream framed by heeprd: a magic line, the stream, then the
// stream's length and SHA-256. badger's own loader trusts its input (garbage can make it panic),
// so Restore checks the frame before it hands the stream over.
var backupMagic = []byte("heeprd-backup 1\n")

const backupTrailer = 8 + sha256.Size

// Sentinel errors of backup and restore.
var (
	// ErrNotEmpty is returned by Restore for a data directory that already holds something.
	ErrNotEmpty = errors.New("persistence: restore needs an empty or new directory")
	// ErrInMemoryBackup is returned by Backup in --in-memory mode, whose delivered files live
	// outside badger: a backup without them would be incomplete.
	ErrInMemoryBackup = errors.New("persistence: an in-memory store cannot be backed up")
	// ErrBadBackup is returned for input that is not a complete heeprd backup.
	ErrBadBackup = errors.New("persistence: not a complete heeprd backup")
)

// CanBackUp reports ErrInMemoryBackup for an in-memory store, whose files and large values live
// outside badger, and nil otherwise: Backup fails for no other reason before it writes.
func (s *Store) CanBackUp() error {
	if s.memValues != nil {
		return ErrInMemoryBackup
	}
	return nil
}

// Backup writes a consistent copy of everything stored (files included). It may run while the
// server serves: badger reads one snapshot of the database.
func (s *Store) Backup(w io.Writer) error {
	if err := s.CanBackUp(); err != nil {
		return err
	}
	h := sha256.New()
	counter := &countingWriter{w: io.MultiWriter(w, h)}
	if _, err := w.Write(backupMagic); err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	if _, err := s.db.Backup(counter, 0); err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	trailer := binary.BigEndian.AppendUint64(nil, uint64(counter.n))
	if _, err := w.Write(h.Sum(trailer)); err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	return nil
}

type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// Restore loads a backup written by Backup into a new database at dir, which must not exist or
// be empty, so a restore never mixes with live data. The result is checked by loading it. The
// backup is spooled to a temporary file so that its checksum is verified before anything is
// written.
func Restore(dir string, r io.Reader) (agents int, err error) {
	entries, err := os.ReadDir(dir)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return 0, fmt.Errorf("restore into %q: %w", dir, err)
	}
	if len(entries) > 0 {
		return 0, fmt.Errorf("restore into %q: %w", dir, ErrNotEmpty)
	}
	stream, cleanup, err := verifiedStream(r)
	if err != nil {
		return 0, fmt.Errorf("restore: %w", err)
	}
	defer cleanup()

	s, err := Open(Options{Dir: dir, Fsync: true})
	if err != nil {
		return 0, err
	}
	defer func() { err = errors.Join(err, s.Close()) }()
	if err := s.load(stream); err != nil {
		return 0, fmt.Errorf("restore into %q: %w", dir, err)
	}
	snaps, err := s.Load()
	if err != nil {
		return 0, fmt.Errorf("restore into %q: the restored data does not load: %w", dir, err)
	}
	return len(snaps), nil
}

// verifiedStream spools the backup to a temporary file, checks its frame and checksum, and
// returns a reader over badger's stream.
func verifiedStream(r io.Reader) (io.Reader, func(), error) {
	tmp, err := os.CreateTemp("", "heeprd-restore-")
	if err != nil {
		return nil, nil, err
	}
	cleanup := func() { tmp.Close(); os.Remove(tmp.Name()) }
	size, err := io.Copy(tmp, r)
	if err != nil {
		cleanup()
		return nil, nil, err
	}
	payload := size - int64(len(backupMagic)) - backupTrailer
	if payload < 0 {
		cleanup()
		return nil, nil, ErrBadBackup
	}

	head := make([]byte, len(backupMagic))
	trailer := make([]byte, backupTrailer)
	_, err1 := tmp.ReadAt(head, 0)
	_, err2 := tmp.ReadAt(trailer, size-backupTrailer)
	h := sha256.New()
	_, err3 := io.Copy(h, io.NewSectionReader(tmp, int64(len(backupMagic)), payload))
	ok := err1 == nil && err2 == nil && err3 == nil && bytes.Equal(head, backupMagic) &&
		binary.BigEndian.Uint64(trailer) == uint64(payload) && bytes.Equal(h.Sum(nil), trailer[8:])
	if !ok {
		cleanup()
		return nil, nil, ErrBadBackup
	}
	return io.NewSectionReader(tmp, int64(len(backupMagic)), payload), cleanup, nil
}

// load feeds a verified stream to badger, turning a panic in its loader into an error.
func (s *Store) load(r io.Reader) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("%w: badger could not load it: %v", ErrBadBackup, p)
		}
	}()
	if err := s.db.Load(r, 256); err != nil {
		return err
	}
	return s.db.Sync()
}
