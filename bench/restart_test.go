package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
)

func TestMedian(t *testing.T) {
	tests := []struct {
		in   []float64
		want float64
	}{
		{nil, 0},
		{[]float64{3}, 3},
		{[]float64{5, 1, 3}, 3},
		{[]float64{4, 1, 3, 2}, 2.5},
		{[]float64{2, 2, 9}, 2},
	}
	for _, tt := range tests {
		in := append([]float64(nil), tt.in...)
		if got := median(tt.in); got != tt.want {
			t.Errorf("median(%v) = %v, want %v", tt.in, got, tt.want)
		}
		for i := range in {
			if in[i] != tt.in[i] {
				t.Errorf("median reordered its input: %v, was %v", tt.in, in)
			}
		}
	}
}

func TestRestartReportFinish(t *testing.T) {
	rd := func(ratio float64, rss, agents int64) restartRound {
		return restartRound{Ratio: ratio, RSS: rss, Agents: agents}
	}
	tests := []struct {
		name          string
		rounds        []restartRound
		empty         int64
		wantMedian    float64
		wantRSS       int64
		wantPerAgent  float64
		wantNoteMatch string // "" for no note
	}{
		{"three rounds", []restartRound{rd(2, 300, 100), rd(4, 500, 100), rd(3, 400, 100)}, 100,
			3, 400, 3, ""},
		{"even count averages the middle", []restartRound{rd(1, 1000, 10), rd(3, 2000, 10)},
			500, 2, 1500, 100, ""},
		{"smaller than empty is negative", []restartRound{rd(1, 90, 10)}, 100, 1, 90, -1, ""},
		{"agents changed", []restartRound{rd(1, 600, 10), rd(1, 600, 20)}, 100, 1, 600, 25,
			"differed"},
		{"no agents", []restartRound{rd(1, 600, 0)}, 100, 1, 600, 0, "no agents"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rep := &restartReport{Rounds: tt.rounds}
			rep.finish(tt.empty)
			if rep.MedianRatio != tt.wantMedian || rep.RSSRestart != tt.wantRSS ||
				rep.RSSEmpty != tt.empty || rep.BytesPerAgent != tt.wantPerAgent {
				t.Errorf("median %v rss %d empty %d per agent %v; want %v %d %d %v",
					rep.MedianRatio, rep.RSSRestart, rep.RSSEmpty, rep.BytesPerAgent,
					tt.wantMedian, tt.wantRSS, tt.empty, tt.wantPerAgent)
			}
			notes := strings.Join(rep.Notes, "\n")
			if (tt.wantNoteMatch == "") != (notes == "") ||
				!strings.Contains(notes, tt.wantNoteMatch) {
				t.Errorf("notes %q, want one matching %q", notes, tt.wantNoteMatch)
			}
		})
	}
}

func TestRestartReportWrite(t *testing.T) {
	o := &options{spawn: "bin/heeprd", dataDir: "/tmp/d", fsync: true, rounds: 2,
		settle: 3 * time.Second}
	rep := newRestartReport(o)
	rep.Rounds = []restartRound{
		{Round: 1, RestartSeconds: 1.5, IterateSeconds: 0.5, Ratio: 3, RSS: 60 << 20,
			Agents: 1000, Keys: 1001, ValueBytes: 2 << 20, Open: "read-write"},
		{Round: 2, RestartSeconds: 1.2, IterateSeconds: 0.6, Ratio: 2, RSS: 62 << 20,
			Agents: 1000, Keys: 1001, ValueBytes: 2 << 20, Open: "read-write"},
	}
	rep.finish(20 << 20)

	var table bytes.Buffer
	if err := rep.write(&table, false); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"mode restart  data /tmp/d", "rounds 2", "settle 3s",
		"1.500s", "0.500s", "3.00", "read-write", "median ratio 2.50 over 2 rounds",
		"61.0 MiB after restart", "20.0 MiB empty server", "42992 bytes per agent",
		"over 1000 agents"} {
		if !strings.Contains(table.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, table.String())
		}
	}

	var js bytes.Buffer
	if err := rep.write(&js, true); err != nil {
		t.Fatal(err)
	}
	var got map[string]any
	if err := json.Unmarshal(js.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{"mode", "data", "settings", "rounds", "median_ratio", "agents",
		"rss_after_restart_bytes", "rss_empty_server_bytes", "rss_bytes_per_agent"} {
		if _, ok := got[key]; !ok {
			t.Errorf("JSON lacks %q", key)
		}
	}
	round := got["rounds"].([]any)[0].(map[string]any)
	for _, key := range []string{"round", "restart_seconds", "iterate_seconds", "ratio",
		"rss_bytes", "agents", "keys", "value_bytes", "iterate_open"} {
		if _, ok := round[key]; !ok {
			t.Errorf("round lacks %q", key)
		}
	}
}

// TestScanBadger writes a database with small values and one large enough for the value log,
// and checks that the scan reads every key and every value byte, read-only and read-write.
func TestScanBadger(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "db")
	db, err := badger.Open(badgerOptions(dir, false, io.Discard))
	if err != nil {
		t.Fatal(err)
	}
	var wantBytes int64
	err = db.Update(func(txn *badger.Txn) error {
		for i := range 50 {
			v := bytes.Repeat([]byte{byte(i)}, i+1)
			wantBytes += int64(len(v))
			if err := txn.Set([]byte{'k', byte(i)}, v); err != nil {
				return err
			}
		}
		big := make([]byte, 100<<10) // above the value threshold: kept in the value log
		wantBytes += int64(len(big))
		return txn.Set([]byte("big"), big)
	})
	if err = errors.Join(err, db.Close()); err != nil {
		t.Fatal(err)
	}
	for _, readOnly := range []bool{true, false} {
		res, err := scanBadger(dir, readOnly, io.Discard)
		if err != nil {
			t.Fatalf("%s: %v", openMode(readOnly), err)
		}
		if res.keys != 51 || res.valueBytes != wantBytes || res.took <= 0 ||
			res.readOnly != readOnly {
			t.Errorf("%s: %+v, want 51 keys and %d value bytes", openMode(readOnly), res,
				wantBytes)
		}
	}
	if _, err := scanBadger(filepath.Join(t.TempDir(), "none"), true, io.Discard); err == nil {
		t.Error("read-only scan of a missing directory succeeded")
	}
}

func TestRestartNeedsDatabase(t *testing.T) {
	empty := t.TempDir()
	file := filepath.Join(empty, "db")
	for _, tt := range []struct {
		name, data string
	}{{"no db directory", empty}, {"db is a file", empty}} {
		t.Run(tt.name, func(t *testing.T) {
			if tt.name == "db is a file" {
				if err := os.WriteFile(file, nil, 0o600); err != nil {
					t.Fatal(err)
				}
			}
			err := run(t.Context(), []string{"restart", "--spawn", "/nonexistent/heeprd",
				"--data", tt.data}, io.Discard, io.Discard)
			if err == nil || !strings.Contains(err.Error(), "no database at "+file) {
				t.Errorf("error %v, want no database at %s", err, file)
			}
		})
	}
}

func TestRestartOptions(t *testing.T) {
	o, err := parseOptions("restart", []string{"--spawn", "x", "--data", "d"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if o.rounds != 3 || o.settle != 3*time.Second || !o.fsync {
		t.Errorf("defaults: rounds %d settle %s fsync %v; want 3, 3s, true", o.rounds,
			o.settle, o.fsync)
	}
}
