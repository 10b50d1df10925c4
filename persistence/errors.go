package persistence

import (
	"errors"
	"fmt"
	"io/fs"
)

// Sentinel errors of the store.
var (
	// ErrCorrupt marks a record that cannot be decoded. The server refuses to start on one rather
	// than drop data silently; the error names the key.
	ErrCorrupt = errors.New("persistence: corrupt record")
	// ErrBroken is returned for every write after one commit failed: the state in memory may be
	// ahead of the disk, so the server stops acknowledging anything until it is restarted.
	ErrBroken = errors.New("persistence: store failed an earlier commit")
	// ErrClosed is returned for writes after Close.
	ErrClosed = errors.New("persistence: store closed")
	// ErrNotFound is returned when a file has no stored bytes. It matches fs.ErrNotExist, so
	// callers need not import this package to recognise it.
	ErrNotFound = fmt.Errorf("persistence: not found: %w", fs.ErrNotExist)
)
