package transport

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/heepr/heeprd/actors"
	"github.com/heepr/heeprd/actors/skill"
)

func TestDecodeJSON(t *testing.T) {
	type body struct {
		Name  string `json:"name"`
		Count *int   `json:"count"`
	}
	cases := []struct {
		name     string
		in       string
		optional bool
		wantErr  string // substring of the error; "" for success
	}{
		{"object", `{"name":"a","count":2}`, false, ""},
		{"empty optional", ``, true, ""},
		{"empty required", ` `, false, "empty"},
		{"null", `null`, false, "JSON object"},
		{"array", `[]`, false, "JSON object"},
		{"string", `"x"`, false, "JSON object"},
		{"unknown field", `{"nope":1}`, false, "unknown field"},
		{"wrong type", `{"count":"x"}`, false, `"count"`},
		{"huge number", `{"count":1e400}`, false, "malformed"},
		{"trailing data", `{"name":"a"} {}`, false, "after the JSON object"},
		{"duplicate key", `{"name":"a","count":1,"name":"b"}`, false, "twice"},
		{"vertical tab before", "\v" + `{"name":"a"}`, false, "expected a JSON object"},
		{"no-break space after", `{"name":"a"}` + "\u00a0", false, "after the JSON object"},
		{"JSON whitespace around", " \t\r\n" + `{"name":"a"}` + "\n ", false, ""},
		{"duplicate nested key", `{"name":"a","count":1,"x":{"k":1,"k":2}}`, false, "twice"},
		{"key again in other case", `{"name":"a","Name":"b"}`, false, "letter case"},
		{"no duplicates", `{"name":"a","count":1}`, false, ""},
		{"invalid utf8", "{\"name\":\"\xff\"}", false, "UTF-8"},
		{"truncated", `{"name":`, false, "malformed"},
		{"deep nesting", `{"name":` + strings.Repeat("[", 20000), false, "malformed"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var b body
			err := decodeJSON([]byte(tc.in), &b, tc.optional)
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("unexpected error %v", err)
				}
				return
			}
			if !errors.Is(err, actors.ErrInvalidRequest) || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("err = %v, want invalid request mentioning %q", err, tc.wantErr)
			}
		})
	}
}

// FuzzDecodeJSON checks that no body makes a decoder panic or accept something that is not an
// object of the expected shape.
func FuzzDecodeJSON(f *testing.F) {
	for _, seed := range []string{`{}`, `{"status":"paused"}`, `{"order_id":"x","progress":5}`,
		`null`, `[`, "\x00", `{"progress":1e99}`} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		var st statusBody
		if err := decodeJSON(in, &st, false); err != nil && !errors.Is(err, actors.ErrInvalidRequest) {
			t.Fatalf("error %v is not an invalid request", err)
		}
		var d deliverJSON
		_ = decodeJSON(in, &d, false)
		var o placeOrderBody
		_ = decodeJSON(in, &o, false)
	})
}

func TestCheckURLs(t *testing.T) {
	limits := skill.Limits{MaxURLs: 2, MaxURLBytes: 40}
	cases := []struct {
		name string
		urls []string
		want error
	}{
		{"none", nil, nil},
		{"https", []string{"https://example.com/a"}, nil},
		{"http", []string{"http://example.com"}, nil},
		{"relative", []string{"/a"}, actors.ErrInvalidRequest},
		{"ftp", []string{"ftp://example.com"}, actors.ErrInvalidRequest},
		{"no host", []string{"https://"}, actors.ErrInvalidRequest},
		{"too long", []string{"https://example.com/" + strings.Repeat("a", 40)}, actors.ErrTooLarge},
		{"too many", []string{"https://a.b", "https://a.b", "https://a.b"}, actors.ErrTooLarge},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if err := checkURLs(tc.urls, limits); !errors.Is(err, tc.want) {
				t.Fatalf("checkURLs(%v) = %v, want %v", tc.urls, err, tc.want)
			}
		})
	}
}

func TestCheckFileName(t *testing.T) {
	for _, name := range []string{"a.txt", "résumé.pdf", "x y.png"} {
		if err := checkFileName(name); err != nil {
			t.Errorf("checkFileName(%q) = %v, want nil", name, err)
		}
	}
	for _, name := range []string{"", ".", "..", "a/b", `a\b`, "a\x00", "a\nb", " a",
		strings.Repeat("a", 256), "\xff"} {
		if err := checkFileName(name); !errors.Is(err, actors.ErrInvalidRequest) {
			t.Errorf("checkFileName(%q) = %v, want invalid request", name, err)
		}
	}
}

func TestClassifyCoversEverySentinel(t *testing.T) {
	for _, e := range apiErrors {
		got := classify(errors.Join(errors.New("context"), e.sentinel))
		if got.code != e.code || got.status != e.status {
			t.Errorf("classify(%v) = %s %d, want %s %d", e.sentinel, got.code, got.status,
				e.code, e.status)
		}
	}
	if got := classify(errors.New("surprise")); got.status != 500 {
		t.Errorf("unknown error classified as %d, want 500", got.status)
	}
}

func TestCheckDuplicateKeys(t *testing.T) {
	cases := map[string]bool{ // body: whether it has a duplicate
		`{"a":1,"b":{"a":2}}`:              false,
		`{"a":[{"k":1},{"k":2}],"b":"a"}`:  false,
		`{"a":{"k":"k","v":["k","k"]}}`:    false,
		`{"a":1,"a":1}`:                    true,
		`{"a":[{"k":1,"k":2}]}`:            true,
		`{"a":{"b":{"c":1,"c":2}},"d":1}`:  true,
		`{"a":{"b":1},"c":{"d":1},"a":{}}`: true,
		`{"Key":1,"kEY":2}`:                true,
		`{"s":1,"\u017f":2}`:               true, // a long s folds to s
		// Past manyKeys keys an object keeps them in a map by folded spelling.
		keysBody(2*manyKeys, `"k0"`):        true,
		keysBody(2*manyKeys, `"K0"`):        true,
		keysBody(2*manyKeys, "\"\u212a0\""): true, // the Kelvin sign folds to k
		keysBody(2*manyKeys, `"k31"`):       true, // the last key before it
		keysBody(2*manyKeys, `"k32"`):       false,
		keysBody(manyKeys, `"K15"`):         true, // the last key read as a slice
	}
	for body, dup := range cases {
		err := checkDuplicateKeys([]byte(body))
		if (err != nil) != dup || (dup && !errors.Is(err, actors.ErrInvalidRequest)) {
			t.Errorf("checkDuplicateKeys(%s) = %v, want duplicate=%v", body, err, dup)
		}
	}
}

// keysBody is an object with the keys k0 to k<n-1>, then the quoted key last.
func keysBody(n int, last string) string {
	var b strings.Builder
	b.WriteString("{")
	for i := range n {
		fmt.Fprintf(&b, `"k%d":%d,`, i, i)
	}
	b.WriteString(last + ":0}")
	return b.String()
}

// FuzzFoldKey holds foldKey to strings.EqualFold: two keys fold to the same spelling exactly
// when encoding/json would match them to the same field.
func FuzzFoldKey(f *testing.F) {
	for _, pair := range [][2]string{{"Key", "kEY"}, {"s", "\u017f"}, {"k", "\u212a"},
		{"\u00df", "SS"}, {"\xff", "\ufffd"}, {"a", "b"}} {
		f.Add(pair[0], pair[1])
	}
	f.Fuzz(func(t *testing.T, a, b string) {
		if same, folded := strings.EqualFold(a, b), foldKey(a) == foldKey(b); same != folded {
			t.Fatalf("EqualFold(%q, %q) = %v, but foldKey gives %q and %q", a, b, same,
				foldKey(a), foldKey(b))
		}
	})
}

// hasDuplicateKeys is a slow, obviously right reference for checkDuplicateKeys: it walks the
// decoder's tokens.
func hasDuplicateKeys(body []byte) bool {
	dec := json.NewDecoder(bytes.NewReader(body))
	type level struct {
		keys    map[string]bool
		wantKey bool
	}
	var stack []*level
	for {
		tok, err := dec.Token()
		if err != nil {
			return false
		}
		var top *level
		if len(stack) > 0 {
			top = stack[len(stack)-1]
		}
		switch t := tok.(type) {
		case json.Delim:
			switch t {
			case '{':
				stack = append(stack, &level{keys: map[string]bool{}, wantKey: true})
			case '[':
				stack = append(stack, &level{})
			default:
				stack = stack[:len(stack)-1]
				if len(stack) > 0 && stack[len(stack)-1].keys != nil {
					stack[len(stack)-1].wantKey = true
				}
			}
			continue
		case string:
			if top != nil && top.keys != nil && top.wantKey {
				for k := range top.keys {
					if strings.EqualFold(k, t) { // as encoding/json matches fields
						return true
					}
				}
				top.keys[t], top.wantKey = true, false
				continue
			}
		}
		if top != nil && top.keys != nil {
			top.wantKey = true
		}
	}
}

// FuzzCheckDuplicateKeys compares the byte scanner with the token-walking reference on valid
// JSON, and checks it never panics on anything.
func FuzzCheckDuplicateKeys(f *testing.F) {
	for _, seed := range []string{`{"a":1,"a":2}`, `{"a":{"a":1}}`, `[{"k":1},{"k":1}]`,
		`{"a":"\"a\"","b":1}`, `{"\u0061":1,"a":1}`, `{"k":1,"K":2}`, `{`, `"`,
		keysBody(2*manyKeys, `"K7"`)} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		got := checkDuplicateKeys(body) != nil
		if !json.Valid(body) {
			return
		}
		if want := hasDuplicateKeys(body); got != want {
			t.Fatalf("checkDuplicateKeys(%q) found a duplicate: %v, reference: %v", body, got, want)
		}
	})
}
