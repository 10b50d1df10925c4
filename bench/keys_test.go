package main

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestKeysRoundTrip(t *testing.T) {
	tests := []struct {
		name string
		keys []agentKey
	}{
		{"one", []agentKey{{"agt_aaaaaaaaaaaaaaaa", "sk_live_agt_aaaaaaaaaaaaaaaa_x"}}},
		{"several, order kept", []agentKey{{"agt_b", "sk_live_b"}, {"agt_a", "sk_live_a"},
			{"agt_c", "sk_live_c"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "keys.tsv")
			if err := writeKeys(path, tt.keys); err != nil {
				t.Fatal(err)
			}
			got, err := readKeys(path)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.keys) {
				t.Errorf("read %v, want %v", got, tt.keys)
			}
			fi, err := os.Stat(path)
			if err != nil || fi.Mode().Perm() != 0o600 {
				t.Errorf("mode %v (%v), want 0600: the file holds API keys", fi.Mode(), err)
			}
		})
	}
}

func TestReadKeys(t *testing.T) {
	tests := []struct {
		name    string
		content string
		want    int
		wantErr string
	}{
		{"comments and blank lines", "# made by bench\n\nagt_a\tsk_a\n  \nagt_b\tsk_b\n", 2, ""},
		{"no trailing newline", "agt_a\tsk_a", 1, ""},
		{"space instead of tab", "agt_a sk_a\n", 0, ":1: want agent_id<TAB>api_key"},
		{"missing key", "agt_a\tsk_a\nagt_b\t\n", 0, ":2:"},
		{"three fields", "agt_a\tsk_a\textra\n", 0, ":1:"},
		{"empty", "# nothing\n", 0, "holds no keys"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "keys.tsv")
			if err := os.WriteFile(path, []byte(tt.content), 0o600); err != nil {
				t.Fatal(err)
			}
			got, err := readKeys(path)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || len(got) != tt.want {
				t.Fatalf("%d keys, %v; want %d", len(got), err, tt.want)
			}
		})
	}
}

func TestWriteKeysRefusesMalformed(t *testing.T) {
	path := filepath.Join(t.TempDir(), "keys.tsv")
	if err := writeKeys(path, []agentKey{{"agt_a", "sk\tx"}}); err == nil {
		t.Fatal("wrote a key containing a tab")
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Errorf("a refused write left a file: %v", err)
	}
}
