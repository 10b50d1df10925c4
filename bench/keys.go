package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// agentKey is one registered agent: its id and its API key.
type agentKey struct {
	ID, Key string
}

// writeKeys writes one "agent_id<TAB>api_key" line per agent. The file holds secrets: it is
// created with mode 0600, through a temporary file renamed into place.
func writeKeys(path string, keys []agentKey) error {
	var buf bytes.Buffer
	for _, k := range keys {
		if k.ID == "" || k.Key == "" || strings.ContainsAny(k.ID+k.Key, "\t\n") {
			return fmt.Errorf("write keys: malformed entry for agent %q", k.ID)
		}
		buf.WriteString(k.ID + "\t" + k.Key + "\n")
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".keys-*")
	if err != nil {
		return fmt.Errorf("write keys: %w", err)
	}
	_, err = tmp.Write(buf.Bytes())
	err = errors.Join(err, tmp.Chmod(0o600), tmp.Close())
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("write keys: %w", err)
	}
	return nil
}

// readKeys reads a file written by writeKeys; blank lines and lines starting with # are skipped.
func readKeys(path string) ([]agentKey, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read keys: %w", err)
	}
	defer f.Close()

	var keys []agentKey
	sc := bufio.NewScanner(f)
	for line := 1; sc.Scan(); line++ {
		text := strings.TrimSpace(sc.Text())
		if text == "" || strings.HasPrefix(text, "#") {
			continue
		}
		id, key, ok := strings.Cut(text, "\t")
		if !ok || id == "" || key == "" || strings.Contains(key, "\t") {
			return nil, fmt.Errorf("read keys: %s:%d: want agent_id<TAB>api_key", path, line)
		}
		keys = append(keys, agentKey{ID: id, Key: key})
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read keys: %s: %w", path, err)
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("read keys: %s holds no keys", path)
	}
	return keys, nil
}
