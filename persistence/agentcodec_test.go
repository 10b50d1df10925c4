package persistence

import (
	"errors"
	"reflect"
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
	cases := map[string]actors.AgentState{
		"sample":         sampleState(),
		"everything set": full,
		"nothing set":    {ID: testAgent},
	}
	for name, st := range cases {
		t.Run(name, func(t *testing.T) {
			var got actors.AgentState
			if err := decodeAgent(encodeAgent(&st), &got, nil); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, st) {
				t.Errorf("round trip:\n got %+v\nwant %+v", got, st)
			}
		})
	}
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

// FuzzDecodeAgent checks that no input panics the agent decoder and that whatever decodes in the
// binary layout encodes back to the same bytes.
func FuzzDecodeAgent(f *testing.F) {
	full := sampleState()
	full.Bootstrap = &actors.BootstrapToken{Hash: actors.HashSecret("b"), Used: true}
	f.Add(encodeAgent(&full))
	f.Add(encodeAgent(&actors.AgentState{}))
	json, _ := encode(sampleState())
	f.Add(json)
	f.Add([]byte{agentCodecVersion, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 1})
	f.Fuzz(func(t *testing.T, b []byte) {
		var st actors.AgentState
		if decodeAgent(b, &st, nil) != nil || len(b) == 0 || b[0] != agentCodecVersion {
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
