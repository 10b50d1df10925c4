package persistence

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/heepr/heeprd/actors"
)

func TestBackupRestoreRoundTrip(t *testing.T) {
	src := openTest(t, t.TempDir())
	second := sampleState()
	second.ID = "agt_bbbbbbbbbbbbbbbb"
	order := sampleOrder()
	file := bytes.Repeat([]byte{0, 0xff, 'x'}, 100_000) // goes to the value log
	appendWait(t, src,
		actors.PutAgent{State: sampleState()}, actors.PutAgent{State: second},
		actors.PutOrder{Order: order},
		actors.PutEvent{AgentID: testAgent, Event: &actors.Event{ID: "evt", Seq: 7}},
		actors.PutSkillFile{AgentID: second.ID, File: "SKILL.md", Content: "# mine"},
		actors.PutFile{OrderID: order.ID, Delivery: 1, Name: "a.bin", Data: file},
	)
	want, err := src.Load()
	if err != nil {
		t.Fatal(err)
	}
	var backup bytes.Buffer
	if err := src.Backup(&backup); err != nil {
		t.Fatal(err)
	}
	src.Close()

	dir := filepath.Join(t.TempDir(), "restored")
	agents, err := Restore(dir, &backup)
	if err != nil || agents != 2 {
		t.Fatalf("restore = %d agents, %v; want 2, nil", agents, err)
	}
	dst := openTest(t, dir)
	defer dst.Close()
	got, err := dst.Load()
	if err != nil {
		t.Fatal(err)
	}
	byID := func(a, b *actors.Snapshot) int { return strings.Compare(a.State.ID, b.State.ID) }
	slices.SortFunc(got, byID)
	slices.SortFunc(want, byID)
	if !reflect.DeepEqual(got, want) {
		t.Errorf("restored state differs:\n got %+v\nwant %+v", got, want)
	}
	data, err := dst.ReadFile(order.ID, 1, "a.bin")
	if err != nil || !bytes.Equal(data, file) {
		t.Errorf("restored file differs (%d bytes, %v)", len(data), err)
	}
}

func TestRestoreRefusesNonEmptyDirectory(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "x"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Restore(dir, bytes.NewReader(nil)); !errors.Is(err, ErrNotEmpty) {
		t.Fatalf("err = %v, want ErrNotEmpty", err)
	}
}

func TestRestoreRefusesBadInput(t *testing.T) {
	src := openTest(t, t.TempDir())
	appendWait(t, src, actors.PutAgent{State: sampleState()})
	var good bytes.Buffer
	if err := src.Backup(&good); err != nil {
		t.Fatal(err)
	}
	src.Close()
	flipped := bytes.Clone(good.Bytes())
	flipped[len(backupMagic)+3] ^= 0xff
	cases := map[string][]byte{
		"empty":     nil,
		"garbage":   []byte("not a backup at all, clearly not"),
		"truncated": good.Bytes()[:good.Len()-5],
		"corrupted": flipped,
		"no magic":  good.Bytes()[len(backupMagic):],
	}
	for name, input := range cases {
		t.Run(name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "db")
			if _, err := Restore(dir, bytes.NewReader(input)); !errors.Is(err, ErrBadBackup) {
				t.Fatalf("err = %v, want ErrBadBackup", err)
			}
		})
	}
}
