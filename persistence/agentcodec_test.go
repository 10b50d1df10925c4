package persistence

import (
	"errors"
	"fmt"
	"reflect"
	"slices"
	"testing"
	"time"
	"unsafe"

	"github.com/heepr/heeprd/actors"
)

func TestAgentCodecRoundTrip(t *testing.T) {
	at := time.Unix(1_700_000_000, 123).UTC()
	full := sampleState()
	full.Settings = actors.Settings{Name: "Logo studio ✓", Owner: "ann@example.com",
		PollMinutes: 60, RevisionCap: 100, ManualAcceptance: true, KeyTTLSeconds: 3600}
	full.Status = actors.Paused
	full.Key = &actors.APIKey{Hash: actors.HashSecret("k"), IssuedAt: at,
		ExpiresAt: at.Add(time.Hour), Revoked: true}
	full.Bootstrap = &actors.BootstrapToken{Hash: actors.HashSecret("b"), ExpiresAt: at, Used: true}
	full.LastOrder, full.LastEvent = 1<<40, 7
	cases := []struct {
		name    string
		st      actors.AgentState
		version byte
	}{
		{"sample", sampleState(), agentCodecVersion},
		{"everything set", full, agentCodecVersion},
		{"nothing set", actors.AgentState{ID: testAgent}, agentCodecVersion},
		{"one previous key", withPreviousKeys(full, 1), agentCodecPrevious},
		{"three previous keys", withPreviousKeys(full, 3), agentCodecPrevious},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			b := encodeAgent(&tc.st)
			if b[0] != tc.version {
				t.Errorf("version byte %d, want %d", b[0], tc.version)
			}
			var got actors.AgentState
			if err := decodeAgent(b, &got, nil); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.st) {
				t.Errorf("round trip:\n got %+v\nwant %+v", got, tc.st)
			}
		})
	}
}

// withPreviousKeys gives st's key n predecessors, alternately revoked and expired.
func withPreviousKeys(st actors.AgentState, n int) actors.AgentState {
	key := *st.Key
	at := &key.Previous
	for i := range n {
		issued := time.Unix(int64(1_600_000_000+i), 0).UTC()
		k := &actors.APIKey{Hash: actors.HashSecret(fmt.Sprint("old", i)), IssuedAt: issued,
			ExpiresAt: issued.Add(time.Minute), Revoked: i%2 == 0}
		*at = k
		at = &k.Previous
	}
	st.Key = &key
	return st
}

func TestAgentCodecRefusesDamage(t *testing.T) {
	good := encodeAgent(&actors.AgentState{ID: testAgent, Key: &actors.APIKey{}})
	for name, b := range map[string][]byte{
		"empty":       nil,
		"version":     append([]byte{7}, good[1:]...),
		"truncated":   good[:len(good)-3],
		"trailing":    append(append([]byte{}, good...), 0),
		"bad boolean": func() []byte { c := append([]byte{}, good...); c[len(c)-3] = 9; return c }(),
	} {
		var st actors.AgentState
		if err := decodeAgent(b, &st, nil); !errors.Is(err, ErrCorrupt) {
			t.Errorf("%s: err = %v, want ErrCorrupt", name, err)
		}
	}
}

// TestAgentCodecRefusesBadPreviousKeys damages the count of previous keys, which sits right
// after the key: where a record with one previous key first differs from the same record
// without it.
func TestAgentCodecRefusesBadPreviousKeys(t *testing.T) {
	st := sampleState()
	st.Key = &actors.APIKey{Hash: actors.HashSecret("k")}
	plain := encodeAgent(&st)
	one := withPreviousKeys(st, 1)
	with := encodeAgent(&one)
	count := 1
	for plain[count] == with[count] {
		count++
	}
	if with[count] != 1 {
		t.Fatalf("count byte at %d is %d, want 1", count, with[count])
	}
	keyless := encodeAgent(&actors.AgentState{ID: testAgent})
	for name, b := range map[string][]byte{
		"no previous key":    func() []byte { c := slices.Clone(with); c[count] = 0; return c }(),
		"too many":           func() []byte { c := slices.Clone(with); c[count] = 4; return c }(),
		"without a key":      append([]byte{agentCodecPrevious}, keyless[1:]...),
		"previous key short": with[:count+20],
	} {
		var got actors.AgentState
		if err := decodeAgent(b, &got, nil); !errors.Is(err, ErrCorrupt) {
			t.Errorf("%s: err = %v, want ErrCorrupt", name, err)
		}
	}
}

// FuzzDecodeAgent checks that no input panics the agent decoder and that whatever decodes in the
// binary layout encodes back to the same bytes.
func FuzzDecodeAgent(f *testing.F) {
	full := sampleState()
	full.Bootstrap = &actors.BootstrapToken{Hash: actors.HashSecret("b"), Used: true}
	f.Add(encodeAgent(&full))
	full.Key = &actors.APIKey{Hash: actors.HashSecret("k")}
	previous := withPreviousKeys(full, 2)
	f.Add(encodeAgent(&previous))
	f.Add(encodeAgent(&actors.AgentState{}))
	json, _ := encode(sampleState())
	f.Add(json)
	f.Add([]byte{agentCodecVersion, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 1})
	f.Fuzz(func(t *testing.T, b []byte) {
		var st actors.AgentState
		if decodeAgent(b, &st, nil) != nil || len(b) == 0 ||
			(b[0] != agentCodecVersion && b[0] != agentCodecPrevious) {
			return
		}
		var again actors.AgentState
		if err := decodeAgent(encodeAgent(&st), &again, nil); err != nil ||
			!reflect.DeepEqual(again, st) {
			t.Fatalf("decoded agent does not survive a second round trip: %v", err)
		}
	})
}

// TestAgentCodecSharesRepeatedStrings: agents decoded with one interner read the same as
// without, and two agents of one owner hold one copy of the owner's name.
func TestAgentCodecSharesRepeatedStrings(t *testing.T) {
	var shared interner
	var got [2]actors.AgentState
	for i, id := range []string{"agt_aaaaaaaaaaaaaaaa", "agt_bbbbbbbbbbbbbbbb"} {
		st := sampleState()
		st.ID, st.Settings.Owner = id, "owner-"+"one" // built at run time: not a shared constant
		if err := decodeAgent(encodeAgent(&st), &got[i], &shared); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got[i], st) {
			t.Errorf("decoded %+v, want %+v", got[i], st)
		}
	}
	if unsafe.StringData(got[0].Settings.Owner) != unsafe.StringData(got[1].Settings.Owner) {
		t.Error("two agents of one owner hold two copies of its name")
	}
	if unsafe.StringData(got[0].ID) == unsafe.StringData(got[1].ID) {
		t.Error("two agents share an id")
	}
}
