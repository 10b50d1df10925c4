package transport

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/heepr/heeprd/actors"
	"github.com/heepr/heeprd/actors/skill"
)

// jsonSpace is the whitespace JSON allows around a value; other spaces are not JSON.
const jsonSpace = " \t\n\r"

// decodeJSON decodes a request body holding exactly one JSON object into v. Unknown fields,
// trailing data and invalid UTF-8 are refused rather than guessed at. An empty body decodes as {}
// when optional is set.
func decodeJSON(body []byte, v any, optional bool) error {
	trimmed := bytes.Trim(body, jsonSpace)
	if len(trimmed) == 0 {
		if optional {
			return nil
		}
		return invalid("the body is empty; expected a JSON object")
	}
	if !utf8.Valid(trimmed) {
		return invalid("the body is not valid UTF-8")
	}
	if trimmed[0] != '{' {
		return invalid("expected a JSON object")
	}

	if err := checkDuplicateKeys(trimmed); err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(trimmed))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return invalid("malformed JSON: %s", describeJSONError(err))
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return invalid("unexpected data after the JSON object")
	}
	return nil
}

// checkDuplicateKeys refuses an object that names a key twice, at any depth: encoding/json would
// keep the last one silently, and a client that sent two values meant one of them. Keys that
// differ only in letter case count as the same, since encoding/json matches them to the same
// field (by bytes.EqualFold, which also folds such letters as the long s). It scans the bytes
// without decoding them (on /status this check had cost as much as the decoding itself);
// malformed JSON is left to the decoder to report.
func checkDuplicateKeys(body []byte) error {
	type level struct {
		object  bool
		wantKey bool
		keys    objectKeys
	}
	var stack []level
	for i := 0; i < len(body); i++ {
		switch body[i] {
		case '{', '[':
			stack = append(stack, level{object: body[i] == '{', wantKey: body[i] == '{'})
		case '}', ']':
			if len(stack) == 0 {
				return nil
			}
			stack = stack[:len(stack)-1]
		case ',':
			if top := len(stack) - 1; top >= 0 && stack[top].object {
				stack[top].wantKey = true
			}
		case '"':
			end := stringEnd(body, i)
			if end < 0 {
				return nil
			}
			if top := len(stack) - 1; top >= 0 && stack[top].object && stack[top].wantKey {
				if err := stack[top].keys.add(jsonKey(body[i : end+1])); err != nil {
					return err
				}
				stack[top].wantKey = false
			}
			i = end
		}
	}
	return nil
}

// objectKeys are the keys one object has named so far. Most objects hold a handful, which a
// slice compares fastest; past manyKeys they move to a map by folded spelling, so that a body of
// many thousand keys costs time in proportion to its size, not to its size squared (200 KB of
// keys took a second of CPU before).
type objectKeys struct {
	few    []string
	folded map[string]string // foldKey(key) -> key as sent, once there are manyKeys
}

const manyKeys = 16

// add records key, or refuses it if the object named it before, in any letter case.
func (o *objectKeys) add(key string) error {
	if o.folded == nil {
		for _, k := range o.few {
			if strings.EqualFold(k, key) {
				return sameKey(k, key)
			}
		}
		if o.few = append(o.few, key); len(o.few) < manyKeys {
			return nil
		}
		o.folded = make(map[string]string, 2*manyKeys)
		for _, k := range o.few {
			o.folded[foldKey(k)] = k
		}
		o.few = nil
		return nil
	}
	f := foldKey(key)
	if k, ok := o.folded[f]; ok {
		return sameKey(k, key)
	}
	o.folded[f] = key
	return nil
}

// sameKey is the error for a key that repeats an earlier one.
func sameKey(earlier, key string) error {
	if earlier == key {
		return invalid("key %q appears twice in one object", key)
	}
	return invalid("keys %q and %q name the same field: letter case does not count", earlier, key)
}

// foldKey spells a key so that two keys get the same spelling exactly when strings.EqualFold
// (encoding/json's way to match a field) finds them equal: each rune becomes the smallest rune
// that simple case folding makes it equal to. For ASCII that is the upper case.
func foldKey(key string) string {
	for i := 0; i < len(key); i++ {
		if key[i] >= utf8.RuneSelf {
			return strings.Map(smallestFold, key)
		}
	}
	return strings.ToUpper(key)
}

func smallestFold(r rune) rune {
	least := r
	for f := unicode.SimpleFold(r); f != r; f = unicode.SimpleFold(f) {
		least = min(least, f)
	}
	return least
}

// stringEnd returns the index of the quote that closes the string opening at start, or -1.
func stringEnd(body []byte, start int) int {
	for j := start + 1; j < len(body); j++ {
		switch body[j] {
		case '\\':
			j++
		case '"':
			return j
		}
	}
	return -1
}

// jsonKey is a quoted key's text; only a key with escapes needs decoding to compare.
func jsonKey(quoted []byte) string {
	if bytes.IndexByte(quoted, '\\') < 0 {
		return string(quoted[1 : len(quoted)-1])
	}
	var key string
	if json.Unmarshal(quoted, &key) != nil {
		return string(quoted)
	}
	return key
}

func describeJSONError(err error) string {
	var typeErr *json.UnmarshalTypeError
	if errors.As(err, &typeErr) && typeErr.Field != "" {
		return fmt.Sprintf("field %q must be %s", typeErr.Field, jsonKind(typeErr.Type.Kind().String()))
	}
	return err.Error()
}

func jsonKind(goKind string) string {
	switch goKind {
	case "string":
		return "a string"
	case "bool":
		return "true or false"
	case "slice":
		return "an array"
	case "int", "int64", "int32":
		return "an integer in range"
	default:
		return "of another type"
	}
}

// checkText checks an optional text field against the text limit.
func checkText(field, value string, limit int64) error {
	if int64(len(value)) > limit {
		return tooLarge(fmt.Sprintf("field %q (--max-text-bytes)", field), limit)
	}
	if !utf8.ValidString(value) || containsNUL(value) {
		return invalid("field %q must be valid UTF-8 text without NUL bytes", field)
	}
	return nil
}

// checkName checks a short required name-like field.
func checkName(field, value string, required bool) error {
	switch {
	case value == "" && required:
		return invalid("field %q is required", field)
	case len(value) > 200:
		return invalid("field %q is longer than 200 bytes", field)
	}
	return checkText(field, value, 200)
}

func containsNUL(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] == 0 {
			return true
		}
	}
	return false
}

// checkURLs checks a delivery's links: absolute http(s) URLs within the limits.
func checkURLs(urls []string, l skill.Limits) error {
	if len(urls) > l.MaxURLs {
		return fmt.Errorf("%w: %d URLs exceed the limit of %d per delivery (--max-urls)",
			actors.ErrTooLarge, len(urls), l.MaxURLs)
	}
	for i, raw := range urls {
		if len(raw) > l.MaxURLBytes {
			return tooLarge(fmt.Sprintf("urls[%d] (--max-url-bytes)", i), int64(l.MaxURLBytes))
		}
		u, err := url.Parse(raw)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return invalid("urls[%d] must be an absolute http or https URL", i)
		}
	}
	return nil
}
