package transport

import (
	"encoding/json"
	"reflect"
	"testing"

	"github.com/heepr/heeprd/actors"
)

// statusBodies are bodies for both decoders: the ones the fast path takes, and the ones it must
// leave to decodeJSON.
var statusBodies = []struct {
	body string
	fast bool
}{
	{`{"order_id":"ord_a_1","progress":50,"message":"working on it"}`, true},
	{` { "status" : "paused" } ` + "\n", true},
	{`{"status":"active","order_id":"ord_a_1","progress":0}`, true},
	{`{"order_id":"ord_a_1","progress":100,"message":"héllo ✓"}`, true},
	{`{}`, true},
	{`{"progress":999999999}`, true},
	{`{"progress":1000000000}`, false},
	{`{"progress":05}`, false},
	{`{"progress":5.0}`, false},
	{`{"progress":5e1}`, false},
	{`{"progress":-5}`, false},
	{`{"progress":null}`, false},
	{`{"progress":"5"}`, false},
	{`{"Status":"paused"}`, false},
	{`{"status":"paused","status":"active"}`, false},
	{`{"status":"pa\u0075sed"}`, false},
	{`{"message":"a` + "\x00" + `b"}`, false},
	{`{"message":"` + "\xff" + `"}`, false},
	{`{"unknown":1}`, false},
	{`{"status":"paused"} x`, false},
	{`{"status":"paused",}`, false},
	{`{"status":["paused"]}`, false},
	{"\v" + `{"status":"paused"}`, false},
	{``, false},
	{`[]`, false},
	{`{"status":"paused"`, false},
}

func TestDecodeStatusMatchesDecodeJSON(t *testing.T) {
	for _, tc := range statusBodies {
		var fast statusBody
		fields := statusFields(&fast)
		if got := decodeFlat([]byte(tc.body), fields[:]); got != tc.fast {
			t.Errorf("decodeFlat(%q) = %v, want %v", tc.body, got, tc.fast)
		}
		compareStatusDecoders(t, []byte(tc.body))
	}
}

// FuzzDecodeStatus holds decodeStatus to decodeJSON's answer for every body: the same values,
// or the same error.
func FuzzDecodeStatus(f *testing.F) {
	for _, tc := range statusBodies {
		f.Add([]byte(tc.body))
	}
	f.Fuzz(compareStatusDecoders)
}

func compareStatusDecoders(t *testing.T, body []byte) {
	var got, want statusBody
	gotErr := decodeStatus(body, &got)
	wantErr := decodeJSON(body, &want, false)
	if (gotErr == nil) != (wantErr == nil) || (gotErr != nil && gotErr.Error() != wantErr.Error()) {
		t.Fatalf("%q: decodeStatus err %v, decodeJSON err %v", body, gotErr, wantErr)
	}
	if gotErr == nil && !reflect.DeepEqual(got, want) {
		t.Fatalf("%q: decodeStatus %s, decodeJSON %s", body, show(got), show(want))
	}
}

func show(b statusBody) string {
	out, _ := json.Marshal(b)
	return string(out)
}

func TestEncodeStatusReplyMatchesEncodingJSON(t *testing.T) {
	replies := []statusReply{
		{AgentID: "agt_abc", Status: actors.Active},
		{AgentID: "agt_abc", Status: actors.Paused, Order: &progressReply{OrderID: "ord_abc_1"}},
		{AgentID: "agt_abc", Status: actors.Active,
			Order: &progressReply{OrderID: "ord_abc_1", Progress: 100, Message: "done soon"}},
		{AgentID: "agt_abc", Status: actors.Active,
			Order: &progressReply{OrderID: "ord_abc_1", Progress: 5, Message: `<b>"x"</b> & \`}},
		{AgentID: "agt_abc", Status: actors.Active,
			Order: &progressReply{OrderID: "ord_abc_1", Progress: 5, Message: "line\nnext ✓"}},
	}
	for _, r := range replies {
		checkStatusReply(t, &r)
	}
}

// FuzzEncodeStatusReply compares the reply encoder with encoding/json on arbitrary messages.
func FuzzEncodeStatusReply(f *testing.F) {
	f.Add("working on it", 50)
	f.Add("<script>&\u2028\xff", 7)
	f.Fuzz(func(t *testing.T, message string, percent int) {
		checkStatusReply(t, &statusReply{AgentID: "agt_abc", Status: actors.Active,
			Order: &progressReply{OrderID: "ord_abc_1", Progress: percent, Message: message}})
	})
}

func checkStatusReply(t *testing.T, r *statusReply) {
	t.Helper()
	want, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	got, err := encodeStatusReply([]byte("kept"), r)
	if err != nil || string(got) != "kept"+string(want) {
		t.Fatalf("encodeStatusReply = %s, %v; want kept%s", got, err, want)
	}
}
