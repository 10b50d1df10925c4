package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/heepr/heeprd/persistence"
)

// runBackup implements `heeprd backup`: from a running server's admin API (--from), or from the
// data directory of a stopped one (--data).
func runBackup(args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("heeprd backup", flag.ContinueOnError)
	fs.SetOutput(stderr)
	out := fs.String("out", "", "file to write the backup to (required)")
	data := fs.String("data", "./data", "data directory of a stopped server")
	from := fs.String("from", "", "ops URL of a running server, e.g. http://127.0.0.1:9464")
	tokenFile := fs.String("admin-token-file", "./data/admin-token", "admin token file, with --from")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *out == "" {
		return errors.New("--out is required")
	}

	f, err := os.OpenFile(*out, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	if *from != "" {
		err = backupOnline(*from, *tokenFile, f)
	} else {
		err = backupOffline(filepath.Join(*data, "db"), f)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(*out)
		return err
	}
	fmt.Fprintf(stderr, "backup written to %s\n", *out)
	return nil
}

func backupOffline(dir string, w io.Writer) error {
	if _, err := os.Stat(dir); err != nil {
		return fmt.Errorf("backup: no database at %s: %w", dir, err)
	}
	store, err := persistence.Open(persistence.Options{Dir: dir, Fsync: true})
	if err != nil {
		return fmt.Errorf("%w (is heeprd running on it? then use --from)", err)
	}
	return errors.Join(store.Backup(w), store.Close())
}

func backupOnline(from, tokenFile string, w io.Writer) error {
	token, err := os.ReadFile(tokenFile)
	if err != nil {
		return fmt.Errorf("backup: read admin token: %w", err)
	}
	req, err := http.NewRequest(http.MethodGet, strings.TrimRight(from, "/")+"/admin/backup", nil)
	if err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(string(token)))
	resp, err := (&http.Client{Timeout: time.Hour}).Do(req)
	if err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		return fmt.Errorf("backup: server answered %s: %s", resp.Status, body)
	}
	if _, err := io.Copy(w, resp.Body); err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	return nil
}

// runRestore implements `heeprd restore`: load a backup into a new data directory.
func runRestore(args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("heeprd restore", flag.ContinueOnError)
	fs.SetOutput(stderr)
	in := fs.String("in", "", "backup file to restore (required)")
	data := fs.String("data", "./data", "data directory to restore into; its db/ must not exist")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *in == "" {
		return errors.New("--in is required")
	}

	f, err := os.Open(*in)
	if err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	defer f.Close()
	agents, err := persistence.Restore(filepath.Join(*data, "db"), f)
	if err != nil {
		return err
	}
	fmt.Fprintf(stderr, "restored %d agents into %s\n", agents, *data)
	return nil
}
