package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/heepr/heeprd/persistence"
)

// scanResult is one timed pass over every key and value of a badger database.
type scanResult struct {
	keys, valueBytes int64
	took             time.Duration // open and iteration; closing is not timed
	readOnly         bool
}

// badgerOptions are those heeprd's store opens badger with, so that the iteration replays and
// reads the directory as the server does.
func badgerOptions(dir string, readOnly bool, log io.Writer) badger.Options {
	return persistence.BadgerOptions(dir).WithReadOnly(readOnly).WithLogger(badgerLog{log})
}

// scanBadger opens the badger database in dir and reads every key and value (the latest
// version of each, as a restore does), copying each value into one reused buffer so that every
// byte is read, values in the value log included.
func scanBadger(dir string, readOnly bool, log io.Writer) (res scanResult, err error) {
	res.readOnly = readOnly
	began := time.Now()
	db, err := badger.Open(badgerOptions(dir, readOnly, log))
	if err != nil {
		return res, fmt.Errorf("iterate: open badger at %s (%s): %w", dir, openMode(readOnly),
			err)
	}
	defer func() {
		if cerr := db.Close(); cerr != nil {
			err = errors.Join(err, fmt.Errorf("iterate: close badger: %w", cerr))
		}
	}()
	err = db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.DefaultIteratorOptions)
		defer it.Close()
		var buf []byte
		for it.Rewind(); it.Valid(); it.Next() {
			item := it.Item()
			var verr error
			if buf, verr = item.ValueCopy(buf[:0]); verr != nil {
				return fmt.Errorf("value of key %q: %w", item.Key(), verr)
			}
			res.keys++
			res.valueBytes += int64(len(buf))
		}
		return nil
	})
	res.took = time.Since(began)
	if err != nil {
		return res, fmt.Errorf("iterate %s: %w", dir, err)
	}
	return res, nil
}

// checkDir reports whether path is a directory that can be read.
func checkDir(path string) error {
	fi, err := os.Stat(path)
	if err != nil {
		return err
	}
	if !fi.IsDir() {
		return errors.New("not a directory")
	}
	return nil
}

// badgerLog passes badger's warnings and errors to the harness's stderr and drops the rest,
// so that its open and close chatter does not bury the harness's own lines.
type badgerLog struct{ w io.Writer }

// Errorf prints an error of badger's.
func (l badgerLog) Errorf(format string, args ...any) { l.print("ERROR", format, args) }

// Warningf prints a warning of badger's.
func (l badgerLog) Warningf(format string, args ...any) { l.print("WARNING", format, args) }

// Infof drops badger's information messages.
func (l badgerLog) Infof(string, ...any) {}

// Debugf drops badger's debug messages.
func (l badgerLog) Debugf(string, ...any) {}

func (l badgerLog) print(level, format string, args []any) {
	msg := strings.TrimRight(fmt.Sprintf(format, args...), "\n")
	fmt.Fprintf(l.w, "bench: badger %s: %s\n", level, msg)
}
