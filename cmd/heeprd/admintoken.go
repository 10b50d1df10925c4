package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/heepr/heeprd/actors"
)

// loadAdminToken returns the admin token and the file it is kept in. A token given by flag is
// used as is (and no file is written); otherwise the token in the data directory is read, or
// generated there on first start with mode 0600. With --in-memory it goes to a temporary
// directory that remove deletes. The token itself is never logged.
func loadAdminToken(cfg *config) (token, file string, remove func(), err error) {
	remove = func() {}
	if cfg.AdminToken != "" {
		return cfg.AdminToken, "(given by --admin-token or HEEPR_ADMIN_TOKEN)", remove, nil
	}
	dir := cfg.DataDir
	if cfg.InMemory {
		if dir, err = os.MkdirTemp("", "heeprd-"); err != nil {
			return "", "", remove, fmt.Errorf("admin token: %w", err)
		}
		remove = func() { os.RemoveAll(dir) }
	}
	token, file, err = readOrCreateToken(filepath.Join(dir, "admin-token"))
	return token, file, remove, err
}

// readOrCreateToken reads the token in file, or writes a new one there.
func readOrCreateToken(file string) (token, path string, err error) {
	dir := filepath.Dir(file)

	data, err := os.ReadFile(file)
	if err == nil {
		if token = strings.TrimSpace(string(data)); token == "" {
			return "", "", fmt.Errorf("admin token file %s is empty", file)
		}
		return token, file, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return "", "", fmt.Errorf("read admin token: %w", err)
	}

	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", "", fmt.Errorf("create data directory: %w", err)
	}
	token = "adm_" + actors.NewSecret()
	if err := os.WriteFile(file, []byte(token+"\n"), 0o600); err != nil {
		return "", "", fmt.Errorf("write admin token: %w", err)
	}
	return token, file, nil
}
