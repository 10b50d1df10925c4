package main

// Hostile input on every endpoint: malformed and mistyped bodies, bad ids, bad media. Every
// answer must be a 4xx with the error envelope (never a 5xx, never a dropped connection), no
// refused request may change anything, and the server must still serve afterwards.

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

// hostileCase is one request and what it must get: want is the status (0: any 4xx) and code
// the error code ("" with want 0).
type hostileCase struct {
	name, method, url string
	hdr               map[string]string
	body              []byte
	want              int
	code              string
}

func TestE2EHostileInput(t *testing.T) {
	if testing.Short() {
		t.Skip(shortSkip)
	}
	t.Parallel()
	s := startServer(t, "")
	a := s.newAgent(t, map[string]any{"name": "target"})
	oid := s.placeOrder(t, a.id, nil)
	s.poll(t, a.key)
	fresh := s.createAgent(t, map[string]any{"name": "unregistered"}) // token must survive
	part := strings.TrimPrefix(a.id, "agt_")
	other := s.newAgent(t, nil)

	// an order with a delivered file, for the download paths
	fileOrder := s.placeOrder(t, a.id, nil)
	ct, mp := multipartBody(t, []mpPart{{field: "file", filename: "f.bin", data: binaryBlob(64)}})
	mustStatus(t, s.deliverRaw(t, "", a.key, fileOrder, ct, mp), 201)
	s.poll(t, a.key)

	bearer := func(key string) map[string]string {
		return map[string]string{"Authorization": "Bearer " + key,
			"Content-Type": "application/json"}
	}
	agentH, adminH := bearer(a.key), bearer(s.adminToken)
	bootH := map[string]string{"Authorization": "Bootstrap " + fresh.token,
		"Content-Type": "application/json"}

	type endpoint struct {
		name, method, url string
		hdr               map[string]string
		optional          bool // an empty body is a valid request
	}
	ag, ops := s.agentURL, s.opsURL
	endpoints := []endpoint{
		{"register", "POST", ag + "/agent/register", bootH, true},
		{"deliver", "POST", ag + "/orders/" + oid + "/deliver", agentH, false},
		{"decline", "POST", ag + "/orders/" + oid + "/decline", agentH, false},
		{"flag", "POST", ag + "/api/orders/" + oid + "/flag", agentH, false},
		{"status", "POST", ag + "/status", agentH, false},
		{"admin create agent", "POST", ops + "/admin/agents", adminH, false},
		{"admin mint", "POST", ops + "/admin/agents/" + fresh.id + "/bootstrap", adminH, true},
		{"admin revoke", "POST", ops + "/admin/agents/" + a.id + "/revoke-key", adminH, true},
		{"admin place order", "POST", ops + "/admin/orders", adminH, false},
		{"admin approve", "POST", ops + "/admin/orders/" + oid + "/approve", adminH, true},
		{"admin deny", "POST", ops + "/admin/orders/" + oid + "/deny", adminH, true},
		{"admin release", "POST", ops + "/admin/orders/" + oid + "/release", adminH, true},
		{"admin refund", "POST", ops + "/admin/orders/" + oid + "/refund", adminH, true},
	}
	deep := strings.Repeat("[", 10000)
	generic := []struct {
		name string
		body string
	}{
		{"malformed", `{"text":`},
		{"unquoted keys", `{text: "x"}`},
		{"single quotes", `{'reason':'other'}`},
		{"null", `null`},
		{"array", `[]`},
		{"string", `"str"`},
		{"number", `42`},
		{"true", `true`},
		{"unknown field", `{"zzz_unknown":1}`},
		{"invalid UTF-8", "{\"zzz\":\"\xff\xfe\xfd\"}"},
		{"invalid UTF-8 key", "{\"\xc3\x28\":1}"},
		{"raw NUL", "{\"reason\":\"a\x00b\"}"},
		{"NUL byte alone", "\x00"},
		{"huge float", `{"zzz":1e400}`},
		{"huge integer", `{"zzz":99999999999999999999}`},
		{"deep nesting", deep},
		{"deep nesting in object", `{"text":` + deep},
		{"deep nesting closed", deep + strings.Repeat("]", 10000)},
		{"duplicate keys", `{"reason":"other","reason":"capacity","message":"m"}`},
		{"trailing data", `{}{}`},
		{"trailing garbage", `{} x`},
		{"trailing comma", `{"reason":"other",}`},
		{"comment", `{/* c */}`},
	}

	var cases []hostileCase
	for _, ep := range endpoints {
		for _, g := range generic {
			cases = append(cases, hostileCase{ep.name + "/" + g.name, ep.method, ep.url, ep.hdr,
				[]byte(g.body), 400, "invalid_request"})
		}
		if !ep.optional {
			for _, b := range []string{"", "  \n\t "} {
				cases = append(cases, hostileCase{ep.name + "/empty", ep.method, ep.url, ep.hdr,
					[]byte(b), 400, "invalid_request"})
			}
		}
	}

	// wrong types, missing fields, values out of range, unknown enum values
	fake := "agt_" + strings.Repeat("a", 16)
	dl := futureDeadline()
	specific := []struct {
		ep   int // index into endpoints
		body string
		want int
		code string
	}{
		{0, `{"agent_id":5}`, 400, "invalid_request"},
		{0, `{"agent_id":"` + other.id + `"}`, 400, "invalid_request"},
		{0, `{"agent_id":"` + fresh.id + `","extra":1}`, 400, "invalid_request"},
		{0, `{"agent_id":null,"x":1}`, 400, "invalid_request"},

		{1, `{}`, 400, "invalid_request"},
		{1, `{"text":""}`, 400, "invalid_request"},
		{1, `{"text":null}`, 400, "invalid_request"},
		{1, `{"urls":[]}`, 400, "invalid_request"},
		{1, `{"text":123}`, 400, "invalid_request"},
		{1, `{"text":["a"]}`, 400, "invalid_request"},
		{1, `{"urls":"https://example.com"}`, 400, "invalid_request"},
		{1, `{"urls":[1]}`, 400, "invalid_request"},
		{1, `{"urls":[null]}`, 400, "invalid_request"},
		{1, `{"urls":["ftp://example.com/x"]}`, 400, "invalid_request"},
		{1, `{"urls":["/relative/path"]}`, 400, "invalid_request"},
		{1, `{"urls":["javascript:alert(1)"]}`, 400, "invalid_request"},
		{1, `{"urls":["https://"]}`, 400, "invalid_request"},
		{1, `{"urls":["http://exa mple.com"]}`, 400, "invalid_request"},
		{1, `{"urls":["https://ok.example","file:///etc/passwd"]}`, 400, "invalid_request"},
		{1, `{"text":"a\u0000b"}`, 400, "invalid_request"},
		{1, `{"text":"ok","files":[]}`, 400, "invalid_request"},

		{2, `{}`, 400, "invalid_request"},
		{2, `{"reason":"nope"}`, 400, "invalid_request"},
		{2, `{"reason":""}`, 400, "invalid_request"},
		{2, `{"reason":"OTHER"}`, 400, "invalid_request"},
		{2, `{"reason":"illegal"}`, 400, "invalid_request"},
		{2, `{"reason":1}`, 400, "invalid_request"},
		{2, `{"reason":["other"]}`, 400, "invalid_request"},
		{2, `{"reason":"other","message":5}`, 400, "invalid_request"},
		{2, `{"reason":"other","message":"a\u0000b"}`, 400, "invalid_request"},
		{2, `{"reason":"other","extra":true}`, 400, "invalid_request"},

		{3, `{}`, 400, "invalid_request"},
		{3, `{"reason":"nope"}`, 400, "invalid_request"},
		{3, `{"reason":"out_of_scope"}`, 400, "invalid_request"},
		{3, `{"reason":null}`, 400, "invalid_request"},
		{3, `{"reason":"other","message":{}}`, 400, "invalid_request"},

		{4, `{}`, 400, "invalid_request"},
		{4, `{"status":"sleeping"}`, 400, "invalid_request"},
		{4, `{"status":""}`, 400, "invalid_request"},
		{4, `{"status":"PAUSED"}`, 400, "invalid_request"},
		{4, `{"status":1}`, 400, "invalid_request"},
		{4, `{"status":null}`, 400, "invalid_request"},
		{4, `{"order_id":"` + oid + `"}`, 400, "invalid_request"},
		{4, `{"order_id":"` + oid + `","progress":"x"}`, 400, "invalid_request"},
		{4, `{"order_id":"` + oid + `","progress":"50"}`, 400, "invalid_request"},
		{4, `{"order_id":"` + oid + `","progress":101}`, 400, "invalid_request"},
		{4, `{"order_id":"` + oid + `","progress":-1}`, 400, "invalid_request"},
		{4, `{"order_id":"` + oid + `","progress":50.5}`, 400, "invalid_request"},
		{4, `{"order_id":"` + oid + `","progress":1e400}`, 400, "invalid_request"},
		{4, `{"order_id":"` + oid + `","progress":99999999999999999999}`, 400,
			"invalid_request"},
		{4, `{"order_id":"` + oid + `","progress":null}`, 400, "invalid_request"},
		{4, `{"progress":50}`, 400, "invalid_request"},
		{4, `{"message":"hi"}`, 400, "invalid_request"},
		{4, `{"order_id":123,"progress":5}`, 400, "invalid_request"},
		{4, `{"status":"paused","order_id":"` + oid + `","progress":500}`, 400,
			"invalid_request"},
		{4, `{"status":"paused","progress":5}`, 400, "invalid_request"},
		{4, `{"order_id":"` + oid + `","progress":5,"message":"a\u0000b"}`, 400,
			"invalid_request"},
		{4, `{"order_id":"","progress":5}`, 0, ""},
		{4, `{"order_id":"ord_x","progress":5}`, 404, "not_found"},
		{4, `{"order_id":"../../etc/passwd","progress":5}`, 404, "not_found"},

		{5, `{}`, 400, "invalid_request"},
		{5, `{"name":""}`, 400, "invalid_request"},
		{5, `{"name":5}`, 400, "invalid_request"},
		{5, `{"name":null}`, 400, "invalid_request"},
		{5, `{"name":"a\u0000b"}`, 400, "invalid_request"},
		{5, `{"name":"` + strings.Repeat("n", 201) + `"}`, 400, "invalid_request"},
		{5, `{"name":"a","owner":7}`, 400, "invalid_request"},
		{5, `{"name":"a","poll_minutes":0}`, 400, "invalid_request"},
		{5, `{"name":"a","poll_minutes":61}`, 400, "invalid_request"},
		{5, `{"name":"a","poll_minutes":-5}`, 400, "invalid_request"},
		{5, `{"name":"a","poll_minutes":"10"}`, 400, "invalid_request"},
		{5, `{"name":"a","poll_minutes":1.5}`, 400, "invalid_request"},
		{5, `{"name":"a","poll_minutes":1e400}`, 400, "invalid_request"},
		{5, `{"name":"a","poll_minutes":99999999999999999999}`, 400, "invalid_request"},
		{5, `{"name":"a","revision_cap":-1}`, 400, "invalid_request"},
		{5, `{"name":"a","revision_cap":101}`, 400, "invalid_request"},
		{5, `{"name":"a","key_ttl_seconds":-1}`, 400, "invalid_request"},
		{5, `{"name":"a","key_ttl_seconds":"60"}`, 400, "invalid_request"},
		{5, `{"name":"a","key_ttl_seconds":9223372036854775808}`, 400, "invalid_request"},
		{5, `{"name":"a","bootstrap_ttl_seconds":0}`, 400, "invalid_request"},
		{5, `{"name":"a","bootstrap_ttl_seconds":604801}`, 400, "invalid_request"},
		{5, `{"name":"a","bootstrap_ttl_seconds":-1}`, 400, "invalid_request"},
		{5, `{"name":"a","manual_acceptance":"yes"}`, 400, "invalid_request"},
		{5, `{"name":"a","manual_acceptance":1}`, 400, "invalid_request"},

		{6, `{"ttl_seconds":0}`, 400, "invalid_request"},
		{6, `{"ttl_seconds":-1}`, 400, "invalid_request"},
		{6, `{"ttl_seconds":604801}`, 400, "invalid_request"},
		{6, `{"ttl_seconds":"60"}`, 400, "invalid_request"},
		{6, `{"ttl_seconds":1e400}`, 400, "invalid_request"},
		{6, `{"ttl_seconds":99999999999999999999}`, 400, "invalid_request"},

		{7, `{"reason":"x"}`, 400, "invalid_request"},

		{8, `{}`, 400, "invalid_request"},
		{8, orderJSONString(a.id, `"price":"10"`), 400, "invalid_request"},
		{8, orderJSONString(a.id, `"price":-1`), 400, "invalid_request"},
		{8, orderJSONString(a.id, `"price":1.5`), 400, "invalid_request"},
		{8, orderJSONString(a.id, `"price":1e400`), 400, "invalid_request"},
		{8, orderJSONString(a.id, `"price":99999999999999999999`), 400, "invalid_request"},
		{8, orderJSONString(a.id, `"price":null`), 400, "invalid_request"},
		{8, orderJSONString(a.id, `"deadline":"tomorrow"`), 400, "invalid_request"},
		{8, orderJSONString(a.id, `"deadline":"2000-01-01T00:00:00Z"`), 400, "invalid_request"},
		{8, orderJSONString(a.id, `"deadline":5`), 400, "invalid_request"},
		{8, orderJSONString(a.id, `"deadline":""`), 400, "invalid_request"},
		{8, orderJSONString(a.id, `"gig":""`), 400, "invalid_request"},
		{8, orderJSONString(a.id, `"gig":["x"]`), 400, "invalid_request"},
		{8, orderJSONString(a.id, `"gig":"`+strings.Repeat("g", 201)+`"`), 400,
			"invalid_request"},
		{8, orderJSONString(a.id, `"tier":5`), 400, "invalid_request"},
		{8, orderJSONString(a.id, `"brief":"a\u0000b"`), 400, "invalid_request"},
		{8, orderJSONString(a.id, `"scope":"\u0000"`), 400, "invalid_request"},
		{8, orderJSONString(a.id, `"extra":1`), 400, "invalid_request"},
		{8, orderJSONString("", ""), 400, "invalid_request"},
		{8, orderJSONString(fake, ""), 404, "not_found"},
		{8, orderJSONString("agt_x", ""), 404, "not_found"},
		{8, orderJSONString("../../etc", ""), 404, "not_found"},
		{8, `{"agent_id":"` + a.id + `","gig":"g","deadline":"` + dl + `"}`, 400,
			"invalid_request"},
		{8, `{"agent_id":"` + a.id + `","price":5,"deadline":"` + dl + `"}`, 400,
			"invalid_request"},
		{8, `{"agent_id":"` + a.id + `","gig":"g","price":5}`, 400, "invalid_request"},

		{9, `{"reason":5}`, 400, "invalid_request"},
		{10, `{"reason":"a\u0000b"}`, 400, "invalid_request"},
		{11, `{"reason":["x"]}`, 400, "invalid_request"},
		{12, `{"reason":"x","zzz":1}`, 400, "invalid_request"},
	}
	for _, sp := range specific {
		ep := endpoints[sp.ep]
		cases = append(cases, hostileCase{ep.name + "/" + sp.body, ep.method, ep.url, ep.hdr,
			[]byte(sp.body), sp.want, sp.code})
	}

	// bad ids in paths
	okBody := map[string]string{
		"deliver": `{"text":"x"}`, "decline": `{"reason":"other"}`, "flag": `{"reason":"other"}`,
	}
	badOrderIDs := []string{
		"ord_x", "ord_", "ord", "x", "ord_" + part + "_0", "ord_" + part + "_01",
		"ord_" + part + "_-1", "ord_" + part + "_+1", "ord_" + part + "_1.0",
		"ord_" + part + "_99999999999999999999999", "ord_" + part + "_999",
		"ord_" + strings.ToUpper(part) + "_1", "ord_" + part + "_1%00", "%00",
		"..%2F..%2Fetc%2Fpasswd", "%2e%2e", "ord_%C3%BC", "ord_" + part + "_1%20",
		strings.Repeat("o", 4000), "ord_" + part + "__1", "ord_" + part,
		"ord_" + strings.TrimPrefix(other.id, "agt_") + "_1",
	}
	for _, id := range badOrderIDs {
		for _, act := range []string{"deliver", "decline", "flag"} {
			cases = append(cases, hostileCase{act + " id " + id, "POST",
				ag + "/orders/" + id + "/" + act, agentH, []byte(okBody[act]), 404,
				"not_found"})
		}
		cases = append(cases,
			hostileCase{"admin get order " + id, "GET", ops + "/admin/orders/" + id, adminH,
				nil, 404, "not_found"},
			hostileCase{"admin refund " + id, "POST", ops + "/admin/orders/" + id + "/refund",
				adminH, nil, 404, "not_found"},
			hostileCase{"admin file " + id, "GET", ops + "/admin/orders/" + id +
				"/deliveries/1/files/f.bin", adminH, nil, 404, "not_found"})
	}
	for _, raw := range []string{"/orders/../../etc/deliver", "/orders/./deliver",
		"/orders//deliver", "/api/orders/../../status"} {
		cases = append(cases, hostileCase{"raw path " + raw, "POST", ag + raw, agentH,
			[]byte(`{"text":"x"}`), 0, ""})
	}
	for _, id := range []string{"agt_x", "agt_", "agt_" + strings.ToUpper(part), "..", "%2e%2e",
		"agt_" + part + "x", strings.Repeat("a", 3000), "%00", fake} {
		cases = append(cases,
			hostileCase{"admin get agent " + id, "GET", ops + "/admin/agents/" + id, adminH,
				nil, 404, "not_found"},
			hostileCase{"admin mint " + id, "POST", ops + "/admin/agents/" + id + "/bootstrap",
				adminH, nil, 404, "not_found"},
			hostileCase{"admin revoke " + id, "POST", ops + "/admin/agents/" + id +
				"/revoke-key", adminH, nil, 404, "not_found"},
			hostileCase{"admin put skill " + id, "PUT", ops + "/admin/agents/" + id +
				"/skill/SKILL.md", adminH, []byte("# x"), 404, "not_found"})
	}
	for _, n := range []string{"0", "-1", "abc", "1.5", "99999999999999999999", "%20", "1e3",
		"2", "", "0x1"} {
		cases = append(cases, hostileCase{"file delivery " + n, "GET", ops + "/admin/orders/" +
			fileOrder + "/deliveries/" + n + "/files/f.bin", adminH, nil, 404, "not_found"})
	}
	for _, name := range []string{"..%2F..%2Fetc%2Fpasswd", "%00", "f.bin%00", "F.BIN",
		"f.bin%2F", "..", "%2e%2e%2fdb"} {
		cases = append(cases, hostileCase{"file name " + name, "GET", ops + "/admin/orders/" +
			fileOrder + "/deliveries/1/files/" + name, adminH, nil, 404, "not_found"})
	}

	// skill uploads
	skillURL := ops + "/admin/agents/" + a.id + "/skill/"
	for _, sc := range []struct {
		file, body string
		want       int
		code       string
	}{
		{"SKILL.md", "", 400, "invalid_request"},
		{"SKILL.md", "bad \xff\xfe utf-8", 400, "invalid_request"},
		{"RULES.md", "nul \x00 byte", 400, "invalid_request"},
		{"skill.json", "{}", 400, "invalid_request"},
		{"NOPE.md", "x", 404, "not_found"},
		{"..%2FSKILL.md", "x", 404, "not_found"},
		{"SKILL.md%00", "x", 404, "not_found"},
	} {
		cases = append(cases, hostileCase{"put skill " + sc.file + " " + sc.body, "PUT",
			skillURL + sc.file, adminH, []byte(sc.body), sc.want, sc.code})
	}

	// deliveries with hostile media
	deliverURL := ag + "/orders/" + oid + "/deliver"
	withCT := func(ct string) map[string]string {
		return map[string]string{"Authorization": "Bearer " + a.key, "Content-Type": ct}
	}
	mpCase := func(name string, parts []mpPart, want int, code string) {
		ct, body := multipartBody(t, parts)
		cases = append(cases, hostileCase{"multipart " + name, "POST", deliverURL, withCT(ct),
			body, want, code})
	}
	txt := func(field, v string) mpPart { return mpPart{field: field, data: []byte(v)} }
	file := func(name string) mpPart {
		return mpPart{field: "file", filename: name, data: []byte("data")}
	}
	mpCase("unknown field", []mpPart{txt("text", "x"), txt("zzz", "y")}, 400, "invalid_request")
	mpCase("text twice", []mpPart{txt("text", "x"), txt("text", "y")}, 400, "invalid_request")
	mpCase("duplicate file names", []mpPart{file("a.txt"), file("a.txt")}, 400,
		"invalid_request")
	mpCase("NUL in text", []mpPart{txt("text", "a\x00b")}, 400, "invalid_request")
	mpCase("invalid UTF-8 text", []mpPart{txt("text", "a\xffb")}, 400, "invalid_request")
	mpCase("bad url", []mpPart{txt("text", "x"), txt("urls", "ftp://x")}, 400,
		"invalid_request")
	mpCase("empty url", []mpPart{txt("urls", "")}, 400, "invalid_request")
	mpCase("nothing", nil, 400, "invalid_request")
	var many []mpPart
	for i := 0; i < 21; i++ {
		many = append(many, file(fmt.Sprintf("f%02d.txt", i)))
	}
	mpCase("21 files", many, 413, "payload_too_large")
	var urls []mpPart
	for i := 0; i < 21; i++ {
		urls = append(urls, txt("urls", fmt.Sprintf("https://example.com/%d", i)))
	}
	mpCase("21 urls", urls, 413, "payload_too_large")
	mpCase("long url", []mpPart{txt("urls", "https://example.com/"+strings.Repeat("u", 3000))},
		413, "payload_too_large")
	_, good := multipartBody(t, []mpPart{txt("text", "x")})
	for _, m := range []struct {
		name, ct string
		body     []byte
	}{
		{"no boundary", "multipart/form-data", good},
		{"wrong boundary", "multipart/form-data; boundary=nope", good},
		{"garbage", "multipart/form-data; boundary=xyz", []byte("garbage\r\n--xyz")},
		{"truncated", withBoundary(good), good[:len(good)-12]},
		{"empty", "multipart/form-data; boundary=xyz", []byte{}},
		{"JSON as multipart", "multipart/form-data; boundary=xyz", []byte(`{"text":"x"}`)},
	} {
		cases = append(cases, hostileCase{"multipart " + m.name, "POST", deliverURL,
			withCT(m.ct), m.body, 0, ""})
	}
	cases = append(cases, hostileCase{"huge Authorization header", "GET", ag + "/events",
		map[string]string{"Authorization": "Bearer " + strings.Repeat("k", 20000)}, nil, 0, ""})

	t.Logf("%d hostile requests", len(cases))
	for _, tc := range cases {
		r, err := s.try(tc.method, tc.url, tc.hdr, tc.body)
		if err != nil {
			t.Errorf("%s: no answer (dropped connection?): %v", clip([]byte(tc.name)), err)
			continue
		}
		r.req = clip([]byte(tc.name)) + " [" + r.req + "]"
		if tc.want == 0 {
			expect4xx(t, s, r)
			continue
		}
		if r.status != tc.want {
			t.Errorf("%s, want %d %s", r, tc.want, tc.code)
			checkEnvelope(t, s, r)
			continue
		}
		expectError(t, s, r, tc.want, tc.code)
	}

	t.Run("nothing changed and the server still serves", func(t *testing.T) {
		s.expectEmptyPoll(t, a.key)
		o := s.getOrder(t, oid)
		if o.State != "in_progress" || len(o.Deliveries) != 0 || o.Progress != nil ||
			o.Decline != nil || o.Flag != nil || len(o.History) != 1 {
			t.Errorf("refused requests changed the order: %+v", o)
		}
		ag := s.getAgent(t, a.id)
		if ag.Status != "active" || ag.KeyState != "active" {
			t.Errorf("refused requests changed the agent: status %s key %s", ag.Status,
				ag.KeyState)
		}
		s.register(t, fresh) // the token survived every refused register and mint
		r := s.agent(t, "POST", "/orders/"+oid+"/deliver", a.key,
			map[string]any{"text": "still works"})
		if r.status != 201 {
			t.Errorf("valid delivery after the hostile run: %s", r)
		}
	})
}

// orderJSONString is a valid order body for agentID with one field replaced or added
// (field is `"name":value`, or "" for none).
func orderJSONString(agentID, field string) string {
	fields := map[string]string{
		"agent_id": fmt.Sprintf("%q", agentID), "gig": `"g"`, "price": "5",
		"deadline": `"` + futureDeadline() + `"`,
	}
	extra := ""
	if field != "" {
		name, value, _ := strings.Cut(field, ":")
		name = strings.Trim(name, `"`)
		if _, ok := fields[name]; ok {
			fields[name] = value
		} else {
			extra = "," + field
		}
	}
	if agentID == "" {
		delete(fields, "agent_id")
	}
	var b strings.Builder
	b.WriteString("{")
	first := true
	for _, k := range []string{"agent_id", "gig", "price", "deadline"} {
		v, ok := fields[k]
		if !ok {
			continue
		}
		if !first {
			b.WriteString(",")
		}
		first = false
		fmt.Fprintf(&b, "%q:%s", k, v)
	}
	b.WriteString(extra + "}")
	return b.String()
}

// withBoundary returns the multipart Content-Type of a body made by multipartBody.
func withBoundary(body []byte) string {
	line, _, _ := strings.Cut(string(body), "\r\n")
	return "multipart/form-data; boundary=" + strings.TrimPrefix(line, "--")
}

// ---- concurrent requests: the agent's actor serializes them ----

func TestE2EConcurrentRequests(t *testing.T) {
	if testing.Short() {
		t.Skip(shortSkip)
	}
	t.Parallel()
	s := startServer(t, "")

	t.Run("one order delivered by 12 requests at once", func(t *testing.T) {
		c := s.newAgent(t, nil)
		oid := s.placeOrder(t, c.id, nil)
		const n = 12
		statuses := make([]int, n)
		var wg sync.WaitGroup
		for i := 0; i < n; i++ {
			wg.Add(1)
			go func(i int) {
				defer wg.Done()
				r, err := s.try("POST", s.agentURL+"/orders/"+oid+"/deliver", map[string]string{
					"Authorization": "Bearer " + c.key, "Content-Type": "application/json",
				}, []byte(fmt.Sprintf(`{"text":"attempt %d"}`, i)))
				if err != nil {
					t.Errorf("delivery %d: %v", i, err)
					return
				}
				statuses[i] = r.status
			}(i)
		}
		wg.Wait()
		created, conflicts := 0, 0
		for _, st := range statuses {
			switch st {
			case 201:
				created++
			case 409:
				conflicts++
			}
		}
		if created != 1 || conflicts != n-1 {
			t.Errorf("statuses %v: want one 201 and %d 409", statuses, n-1)
		}
		if o := s.getOrder(t, oid); len(o.Deliveries) != 1 || o.State != "delivered" {
			t.Errorf("order has %d deliveries, state %s; want 1, delivered",
				len(o.Deliveries), o.State)
		}
	})

	t.Run("polls racing with orders lose and repeat nothing", func(t *testing.T) {
		const agents, orders, pollers = 4, 10, 3
		type agentRun struct {
			c    creds
			seen sync.Map
			dups int
			mu   sync.Mutex
		}
		runs := make([]*agentRun, agents)
		for i := range runs {
			runs[i] = &agentRun{c: s.newAgent(t, nil)}
		}
		var wg sync.WaitGroup
		stop := make(chan struct{})
		for _, run := range runs {
			for p := 0; p < pollers; p++ {
				wg.Add(1)
				go func(run *agentRun) {
					defer wg.Done()
					for i := 0; i < 500; i++ { // bounded: ends on stop or after 500 polls
						select {
						case <-stop:
							return
						default:
						}
						r, err := s.try("GET", s.agentURL+"/events",
							map[string]string{"Authorization": "Bearer " + run.c.key}, nil)
						if err != nil || r.status != 200 {
							t.Errorf("poll: %v %v", err, r)
							return
						}
						for _, id := range eventIDs(t, r.body) {
							if _, dup := run.seen.LoadOrStore(id, true); dup {
								run.mu.Lock()
								run.dups++
								run.mu.Unlock()
							}
						}
						time.Sleep(5 * time.Millisecond)
					}
				}(run)
			}
		}
		var placeWG sync.WaitGroup
		for _, run := range runs {
			placeWG.Add(1)
			go func(run *agentRun) {
				defer placeWG.Done()
				for i := 0; i < orders; i++ {
					r, err := s.try("POST", s.opsURL+"/admin/orders", map[string]string{
						"Authorization": "Bearer " + s.adminToken,
					}, []byte(orderJSONString(run.c.id, "")))
					if err != nil || r.status != 201 {
						t.Errorf("place order: %v %v", err, r)
						return
					}
				}
			}(run)
		}
		placeWG.Wait()
		time.Sleep(200 * time.Millisecond)
		close(stop)
		wg.Wait()
		for _, run := range runs {
			part := strings.TrimPrefix(run.c.id, "agt_")
			for _, e := range s.poll(t, run.c.key) {
				run.seen.Store(e.ID, true)
			}
			for i := 1; i <= orders; i++ {
				id := fmt.Sprintf("evt_%s_%d", part, i)
				if _, ok := run.seen.Load(id); !ok {
					t.Errorf("agent %s never received %s", run.c.id, id)
				}
			}
			count := 0
			run.seen.Range(func(k, _ any) bool {
				if !strings.HasPrefix(k.(string), "evt_"+part+"_") {
					t.Errorf("agent %s received %s", run.c.id, k)
				}
				count++
				return true
			})
			if count != orders || run.dups != 0 {
				t.Errorf("agent %s: %d distinct events, %d repeated; want %d and 0",
					run.c.id, count, run.dups, orders)
			}
		}
	})
}

// eventIDs returns the ids of the events in a poll answer.
func eventIDs(t testing.TB, body []byte) []string {
	var reply struct {
		Events []struct {
			ID string `json:"id"`
		} `json:"events"`
	}
	decodeInto(t, body, &reply)
	ids := make([]string, len(reply.Events))
	for i, e := range reply.Events {
		ids[i] = e.ID
	}
	return ids
}

// ---- request budgets: 429 with Retry-After ----

func TestE2ERateLimits(t *testing.T) {
	if testing.Short() {
		t.Skip(shortSkip)
	}
	t.Parallel()
	s := startServer(t, "", "--agent-rate", "1", "--agent-burst", "5",
		"--auth-fail-rate", "1", "--auth-fail-burst", "3")
	a, b := s.newAgent(t, nil), s.newAgent(t, nil)

	t.Run("per-agent budget", func(t *testing.T) {
		ok := 0
		var limited *response
		for i := 0; i < 10 && limited == nil; i++ {
			switch r := s.agent(t, "GET", "/events", a.key, nil); r.status {
			case 200:
				ok++
			default:
				limited = r
			}
		}
		if limited == nil || ok < 5 || ok > 6 {
			t.Fatalf("%d polls passed before a refusal (%v); want the burst of 5", ok, limited)
		}
		expectError(t, s, limited, 429, "rate_limited")
		wait := retryAfter(t, limited)
		if r := s.agent(t, "GET", "/events", b.key, nil); r.status != 200 {
			t.Errorf("another agent is limited too: %s", r)
		}
		if r := s.admin(t, "GET", "/admin/agents/"+a.id, nil); r.status != 200 {
			t.Errorf("the owner is limited by the agent's budget: %s", r)
		}
		time.Sleep(wait)
		if r := s.agent(t, "GET", "/events", a.key, nil); r.status != 200 {
			t.Errorf("after Retry-After: %s, want 200", r)
		}
	})
	t.Run("failed authentications per address", func(t *testing.T) {
		bad := "sk_live_" + a.id + "_" + strings.Repeat("z", 32)
		for i := 0; i < 3; i++ {
			expectError(t, s, s.agent(t, "GET", "/events", bad, nil), 401, "key_unknown")
		}
		r := s.agent(t, "GET", "/events", bad, nil)
		expectError(t, s, r, 429, "rate_limited")
		wait := retryAfter(t, r)
		time.Sleep(wait)
		if r := s.agent(t, "GET", "/events", b.key, nil); r.status != 200 {
			t.Errorf("after Retry-After: %s, want 200", r)
		}
	})
}

// retryAfter checks a 429 carries Retry-After in whole seconds (1 to 60) and returns it.
func retryAfter(t testing.TB, r *response) time.Duration {
	t.Helper()
	var secs int
	if _, err := fmt.Sscanf(r.header.Get("Retry-After"), "%d", &secs); err != nil ||
		secs < 1 || secs > 60 {
		t.Errorf("%s: Retry-After %q, want whole seconds", r, r.header.Get("Retry-After"))
		return time.Second
	}
	return time.Duration(secs) * time.Second
}

// TestE2EConnectionLimit fills the agent listener's --max-conns with open keep-alive
// connections: one more gets a 503 with the JSON envelope and Retry-After, counted by
// listener, and once a connection closes a new one is served again.
func TestE2EConnectionLimit(t *testing.T) {
	if testing.Short() {
		t.Skip(shortSkip)
	}
	t.Parallel()
	const limit = 4
	s := startServer(t, "", "--max-conns", fmt.Sprint(limit))
	a := s.newAgent(t, nil)
	s.client.CloseIdleConnections() // the test's own connections fill the listener
	addr := strings.TrimPrefix(s.agentURL, "http://")
	poll := "GET /events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + a.key + "\r\n\r\n"
	open := func() (net.Conn, *http.Response) {
		c, err := net.DialTimeout("tcp", addr, 10*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		_ = c.SetDeadline(time.Now().Add(10 * time.Second))
		if _, err := c.Write([]byte(poll)); err != nil {
			t.Fatal(err)
		}
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatalf("no answer: %v", err)
		}
		body, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body = io.NopCloser(bytes.NewReader(body))
		return c, resp
	}

	var held []net.Conn
	for range limit {
		c, resp := open()
		if resp.StatusCode != 200 { // the server may not have seen the client's close yet
			time.Sleep(100 * time.Millisecond)
			c, resp = open()
		}
		if resp.StatusCode != 200 {
			t.Fatalf("poll %d within the limit: %d", len(held)+1, resp.StatusCode)
		}
		held = append(held, c)
	}
	_, resp := open()
	var body struct {
		Error struct{ Code, Message string }
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil || resp.StatusCode != 503 ||
		body.Error.Code != "unavailable" || resp.Header.Get("Retry-After") == "" ||
		!strings.Contains(body.Error.Message, "--max-conns") {
		t.Errorf("over --max-conns: %d %v %+v (%v)", resp.StatusCode, resp.Header, body, err)
	}
	if v := lcMetric(t, s, `heepr_http_connections_refused_total{listener="agent"}`); v < 1 {
		t.Errorf("refused connections counted %v, want at least 1", v)
	}

	held[0].Close()
	for i := 0; ; i++ { // the server sees the close a moment later
		if _, resp := open(); resp.StatusCode == 200 {
			break
		} else if i == 50 {
			t.Fatalf("after a close: %d, want a served poll", resp.StatusCode)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
