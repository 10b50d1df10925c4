package skill

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
)

const sampleID = "agt_k3j5m2n7p4q6r8s2"

func sampleParams() Params {
	return Params{
		AgentID:     sampleID,
		AgentName:   `Copy <Bot> "one"`,
		PollMinutes: 20,
		BaseURL:     "http://127.0.0.1:8080",
		Limits: Limits{
			MaxBodyBytes: 32 << 20,
			MaxFileBytes: 32 << 20,
			MaxTextBytes: 64 << 10,
			MaxFiles:     20,
			MaxURLs:      20,
			MaxURLBytes:  2048,
		},
		Budget: Budget{Rate: 20, Burst: 100},
	}
}

func mustRender(t *testing.T, p Params, overrides map[string]string) *Package {
	t.Helper()
	pkg, err := Render(p, overrides)
	if err != nil {
		t.Fatalf("Render: %v", err)
	}
	return pkg
}

func mustFile(t *testing.T, pkg *Package, name string) ([]byte, string) {
	t.Helper()
	content, hash, ok := pkg.File(name)
	if !ok {
		t.Fatalf("File(%q): not found", name)
	}
	return content, hash
}

type indexForTest struct {
	AgentID     string `json:"agent_id"`
	AgentName   string `json:"agent_name"`
	PollMinutes int    `json:"poll_minutes"`
	APIBase     string `json:"api_base"`
	Files       []struct {
		Name   string `json:"name"`
		Size   int    `json:"size"`
		SHA256 string `json:"sha256"`
	} `json:"files"`
	Limits map[string]int64 `json:"limits"`
}

func decodeIndex(t *testing.T, pkg *Package) indexForTest {
	t.Helper()
	content, _ := mustFile(t, pkg, IndexFile)
	dec := json.NewDecoder(bytes.NewReader(content))
	dec.DisallowUnknownFields()
	var idx indexForTest
	if err := dec.Decode(&idx); err != nil {
		t.Fatalf("decode skill.json: %v\n%s", err, content)
	}
	return idx
}

func TestRenderFiles(t *testing.T) {
	p := sampleParams()
	pkg := mustRender(t, p, nil)
	base := p.BaseURL + "/api"

	tests := []struct {
		name string
		want []string // substrings the rendered file must contain
	}{
		{SkillFile, []string{
			sampleID, base + "/agent/register", base + "/events", base + "/skill",
			".heepr-marketplace-key", "0600", "active_key_exists", "bootstrap_used",
			"bootstrap_expired", "every 20 minutes", `"status": "paused"`,
			"Idempotency-Key", "idempotency_key_reused", "rate_limited", "Retry-After",
			"invalid_state", "refunded",
		}},
		{HeartbeatFile, []string{
			sampleID, "20 minutes", "evt_k3j5m2n7p4q6r8s2_", "new_order",
			"owner_approved_order", "owner_denied_order", "revision_request", "scope_change",
			`"reason": "approval_timeout"`, `"note":`, `"revision": 1`, "revisions_used",
			"revisions_allowed", "revision_review", "Idempotency-Key", "Retry-After",
		}},
		{RulesFile, []string{
			"out_of_scope", "capacity", "deadline_too_short", "missing_information",
			"illegal", "policy_violation", "confidential", "cannot cancel",
		}},
		{APIFile, []string{
			sampleID, p.BaseURL + "/events", base + "/events", "$HEEPR_KEY",
			"32 MiB (33554432 bytes)", "64 KiB (65536 bytes)", "2048 bytes",
			`"agent_name": "Copy <Bot> \"one\""`, `"max_body_bytes": 33554432`,
		}},
		{IndexFile, []string{sampleID, `"api_base": "` + base + `"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			content, hash := mustFile(t, pkg, tt.name)
			text := string(content)
			for _, w := range tt.want {
				if !strings.Contains(text, w) {
					t.Errorf("%s lacks %q", tt.name, w)
				}
			}
			if strings.Contains(text, "<no value>") {
				t.Errorf("%s has a missing template value", tt.name)
			}
			if hash != Hash(content) {
				t.Errorf("hash %q, want %q", hash, Hash(content))
			}
		})
	}
}

// TestAPIComplete guards API.md against drifting from the contract: every endpoint, error
// code and order state must appear in it.
func TestAPIComplete(t *testing.T) {
	content, _ := mustFile(t, mustRender(t, sampleParams(), nil), APIFile)
	want := []string{
		"POST /agent/register", "GET /events", "POST /orders/{id}/deliver",
		"POST /orders/{id}/decline", "POST /orders/{id}/flag", "POST /status", "GET /skill",
		"GET /agents/{id}/skill/{file}",
		"invalid_request", "missing_credentials", "key_unknown", "key_revoked", "key_expired",
		"bootstrap_unknown", "bootstrap_used", "bootstrap_expired", "forbidden", "not_found",
		"active_key_exists", "invalid_state", "agent_paused", "payload_too_large",
		"unsupported_media_type", "rate_limited", "unavailable",
		"awaiting_approval", "in_progress", "delivered", "revision_review", "released",
		"declined", "denied", "flagged", "refunded",
		"If-None-Match", "ETag", "Retry-After", "multipart/form-data",
		// Behaviour added since the first contract: idempotent writes, the request budget,
		// every event kind, and the reasons the system records on its own.
		"idempotency_key_reused", "method_not_allowed", "Idempotency-Key", "--agent-rate",
		"--agent-burst", "new_order", "owner_approved_order", "owner_denied_order",
		"revision_request", "scope_change", "missed_deadline", "approval_timeout",
		"--max-body-bytes", "--max-file-bytes", "--max-text-bytes", "--max-files",
		"--max-urls", "--max-url-bytes",
	}
	for _, w := range want {
		if !bytes.Contains(content, []byte(w)) {
			t.Errorf("API.md lacks %q", w)
		}
	}
}

// TestAPIErrorTable checks that each error code sits in the error table with the status the
// transport answers it with (transport/errors.go), so that the table and the server agree.
func TestAPIErrorTable(t *testing.T) {
	content, _ := mustFile(t, mustRender(t, sampleParams(), nil), APIFile)
	rows := []struct {
		status int
		code   string
	}{
		{400, "invalid_request"}, {401, "missing_credentials"}, {401, "key_unknown"},
		{401, "key_revoked"}, {401, "key_expired"}, {401, "bootstrap_unknown"},
		{401, "bootstrap_used"}, {401, "bootstrap_expired"}, {403, "forbidden"},
		{404, "not_found"}, {405, "method_not_allowed"}, {409, "active_key_exists"},
		{409, "invalid_state"}, {409, "agent_paused"}, {413, "payload_too_large"},
		{415, "unsupported_media_type"}, {422, "idempotency_key_reused"},
		{429, "rate_limited"}, {500, "internal"}, {503, "unavailable"},
	}
	for _, r := range rows {
		row := fmt.Sprintf("| %d | `%s` |", r.status, r.code)
		if !bytes.Contains(content, []byte(row)) {
			t.Errorf("API.md error table lacks the row %q", row)
		}
	}
}

// idempotentPaths are the endpoints that take an Idempotency-Key; every example that calls one
// must show the header, so that an agent copying it gets safe retries.
var idempotentPaths = regexp.MustCompile(`/(deliver|decline|flag|status)\b`)

// curlCommands returns each curl command in text, its continuation lines joined.
func curlCommands(text string) []string {
	var cmds []string
	var cur strings.Builder
	in := false
	for _, line := range strings.Split(text, "\n") {
		trimmed := strings.TrimSpace(line)
		if !in && strings.HasPrefix(trimmed, "curl ") {
			in = true
			cur.Reset()
		}
		if !in {
			continue
		}
		cur.WriteString(strings.TrimSuffix(trimmed, "\\"))
		cur.WriteByte(' ')
		if !strings.HasSuffix(trimmed, "\\") {
			cmds = append(cmds, cur.String())
			in = false
		}
	}
	return cmds
}

func TestWriteExamplesUseIdempotencyKey(t *testing.T) {
	pkg := mustRender(t, sampleParams(), nil)
	for _, name := range []string{SkillFile, APIFile, HeartbeatFile} {
		content, _ := mustFile(t, pkg, name)
		seen := 0
		for _, cmd := range curlCommands(string(content)) {
			if !strings.Contains(cmd, "-X POST") || !idempotentPaths.MatchString(cmd) {
				continue
			}
			seen++
			if !strings.Contains(cmd, "Idempotency-Key: ") {
				t.Errorf("%s: example without Idempotency-Key: %s", name, cmd)
			}
		}
		if name == APIFile && seen < 5 {
			t.Errorf("API.md: found %d write examples, want at least 5", seen)
		}
	}
}

// literalKey finds Idempotency-Key values written out in full (not "$KEY" or "<order id>...").
// A value runs to the quote or backtick that closes it, so that a space inside is caught.
var literalKey = regexp.MustCompile(`Idempotency-Key: ([^'"\x60\n]+)`)

// TestExampleKeysValid checks the literal keys in the examples against the server's rule:
// 1 to 255 bytes of printable ASCII without spaces.
func TestExampleKeysValid(t *testing.T) {
	pkg := mustRender(t, sampleParams(), nil)
	for _, name := range []string{SkillFile, APIFile, HeartbeatFile} {
		content, _ := mustFile(t, pkg, name)
		for _, m := range literalKey.FindAllStringSubmatch(string(content), -1) {
			key := m[1]
			if strings.HasPrefix(key, "$") || strings.HasPrefix(key, "<") {
				continue
			}
			ok := len(key) >= 1 && len(key) <= 255
			for i := 0; i < len(key); i++ {
				ok = ok && key[i] >= 0x21 && key[i] <= 0x7e
			}
			if !ok {
				t.Errorf("%s: example key %q is not a valid Idempotency-Key", name, key)
			}
		}
	}
}

func TestRulesShort(t *testing.T) {
	pkg := mustRender(t, sampleParams(), nil)
	// RULES.md rides on every work event, so it must stay small.
	if n := len(pkg.Rules()); n > 2048 {
		t.Errorf("RULES.md is %d bytes, want at most 2048", n)
	}
	content, _ := mustFile(t, pkg, RulesFile)
	if pkg.Rules() != string(content) {
		t.Error("Rules() differs from RULES.md")
	}
}

func TestIndex(t *testing.T) {
	p := sampleParams()
	pkg := mustRender(t, p, nil)
	idx := decodeIndex(t, pkg)

	if idx.AgentID != p.AgentID || idx.AgentName != p.AgentName ||
		idx.PollMinutes != p.PollMinutes || idx.APIBase != p.BaseURL+"/api" {
		t.Errorf("header = %+v", idx)
	}
	wantLimits := map[string]int64{
		"max_body_bytes": 32 << 20, "max_file_bytes": 32 << 20, "max_text_bytes": 64 << 10,
		"max_files": 20, "max_urls": 20, "max_url_bytes": 2048,
	}
	for k, v := range wantLimits {
		if idx.Limits[k] != v {
			t.Errorf("limits[%s] = %d, want %d", k, idx.Limits[k], v)
		}
	}
	if len(idx.Limits) != len(wantLimits) {
		t.Errorf("limits = %v", idx.Limits)
	}

	if len(idx.Files) != len(Files)-1 {
		t.Fatalf("files = %d entries, want %d", len(idx.Files), len(Files)-1)
	}
	for i, f := range idx.Files {
		content, hash := mustFile(t, pkg, Files[i])
		if f.Name != Files[i] || f.Size != len(content) || "sha256:"+f.SHA256 != hash {
			t.Errorf("files[%d] = %+v, want %s size %d hash %s",
				i, f, Files[i], len(content), hash)
		}
	}
}

func TestOverrides(t *testing.T) {
	p := sampleParams()
	plain := mustRender(t, p, nil)

	for _, name := range Files[:4] {
		t.Run(name, func(t *testing.T) {
			text := "# custom " + name + "\n"
			pkg := mustRender(t, p, map[string]string{name: text})

			for _, other := range Files[:4] {
				got, gotHash := mustFile(t, pkg, other)
				want, wantHash := mustFile(t, plain, other)
				if other == name {
					want, wantHash = []byte(text), Hash([]byte(text))
					if gotHash == mustHash(t, plain, other) {
						t.Error("override left the hash unchanged")
					}
				}
				if !bytes.Equal(got, want) || gotHash != wantHash {
					t.Errorf("%s: got %q (%s), want %q (%s)",
						other, head(got), gotHash, head(want), wantHash)
				}
			}
			checkIndexHashes(t, pkg)
		})
	}
}

func TestOverrideRules(t *testing.T) {
	pkg := mustRender(t, sampleParams(), map[string]string{RulesFile: "be nice"})
	if pkg.Rules() != "be nice" {
		t.Errorf("Rules() = %q", pkg.Rules())
	}
}

func checkIndexHashes(t *testing.T, pkg *Package) {
	t.Helper()
	for _, f := range decodeIndex(t, pkg).Files {
		content, hash := mustFile(t, pkg, f.Name)
		if "sha256:"+f.SHA256 != hash || f.Size != len(content) {
			t.Errorf("skill.json lists %s as %d/%s, file is %d/%s",
				f.Name, f.Size, f.SHA256, len(content), hash)
		}
	}
}

func mustHash(t *testing.T, pkg *Package, name string) string {
	t.Helper()
	_, hash := mustFile(t, pkg, name)
	return hash
}

func head(b []byte) string {
	if len(b) > 40 {
		return string(b[:40]) + "..."
	}
	return string(b)
}

func TestRenderErrors(t *testing.T) {
	tests := []struct {
		name      string
		edit      func(*Params)
		overrides map[string]string
	}{
		{"empty id", func(p *Params) { p.AgentID = "" }, nil},
		{"id with quote", func(p *Params) { p.AgentID = `agt_"x` }, nil},
		{"name with newline", func(p *Params) { p.AgentName = "a\nb" }, nil},
		{"poll 0", func(p *Params) { p.PollMinutes = 0 }, nil},
		{"poll 61", func(p *Params) { p.PollMinutes = 61 }, nil},
		{"empty base", func(p *Params) { p.BaseURL = "" }, nil},
		{"relative base", func(p *Params) { p.BaseURL = "/api" }, nil},
		{"ftp base", func(p *Params) { p.BaseURL = "ftp://h" }, nil},
		{"trailing slash", func(p *Params) { p.BaseURL = "http://h:8080/" }, nil},
		{"query", func(p *Params) { p.BaseURL = "http://h?x=1" }, nil},
		{"zero limit", func(p *Params) { p.Limits.MaxURLs = 0 }, nil},
		{"negative rate", func(p *Params) { p.Budget.Rate = -1 }, nil},
		{"NaN burst", func(p *Params) { p.Budget.Burst = math.NaN() }, nil},
		{"infinite rate", func(p *Params) { p.Budget.Rate = math.Inf(1) }, nil},
		{"override skill.json", nil, map[string]string{IndexFile: "{}"}},
		{"override unknown", nil, map[string]string{"NOTES.md": "x"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := sampleParams()
			if tt.edit != nil {
				tt.edit(&p)
			}
			if pkg, err := Render(p, tt.overrides); err == nil {
				t.Errorf("Render succeeded: %v", pkg)
			}
		})
	}
}

func TestRenderEdges(t *testing.T) {
	tests := []struct {
		name string
		edit func(*Params)
	}{
		{"unnamed", func(p *Params) { p.AgentName = "" }},
		{"poll 1", func(p *Params) { p.PollMinutes = 1 }},
		{"poll 60", func(p *Params) { p.PollMinutes = 60 }},
		{"https with path", func(p *Params) { p.BaseURL = "https://heepr.example/agents" }},
		{"odd limits", func(p *Params) { p.Limits.MaxBodyBytes = 1500000 }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := sampleParams()
			tt.edit(&p)
			pkg := mustRender(t, p, nil)
			if idx := decodeIndex(t, pkg); idx.PollMinutes != p.PollMinutes {
				t.Errorf("poll_minutes = %d", idx.PollMinutes)
			}
		})
	}
}

func TestPollWording(t *testing.T) {
	tests := []struct {
		minutes int
		want    string
	}{{1, "every 1 minute:"}, {20, "every 20 minutes:"}, {60, "every 60 minutes:"}}
	for _, tt := range tests {
		p := sampleParams()
		p.PollMinutes = tt.minutes
		content, _ := mustFile(t, mustRender(t, p, nil), SkillFile)
		if !bytes.Contains(content, []byte(tt.want)) {
			t.Errorf("poll %d: SKILL.md lacks %q", tt.minutes, tt.want)
		}
	}
}

// TestBudgetWording checks that API.md states the budget this server enforces, not a default.
func TestBudgetWording(t *testing.T) {
	tests := []struct {
		budget Budget
		want   string
	}{
		{Budget{Rate: 20, Burst: 100},
			"allows **20 requests per second** sustained and bursts of up to **100**."},
		{Budget{Rate: 1, Burst: 3},
			"allows **1 request per second** sustained and bursts of up to **3**."},
		{Budget{Rate: 0.5, Burst: 2.5},
			"allows **0.5 requests per second** sustained and bursts of up to **2**."},
		{Budget{}, "has the budget turned off for now"},
		{Budget{Burst: 100}, "has the budget turned off for now"},
	}
	for _, tt := range tests {
		p := sampleParams()
		p.Budget = tt.budget
		content, _ := mustFile(t, mustRender(t, p, nil), APIFile)
		if !bytes.Contains(content, []byte(tt.want)) {
			t.Errorf("budget %+v: API.md lacks %q", tt.budget, tt.want)
		}
		if bytes.Contains(content, []byte("By default it allows")) {
			t.Errorf("budget %+v: API.md quotes the default budget", tt.budget)
		}
	}
}

func TestRenderDeterministic(t *testing.T) {
	p := sampleParams()
	first := mustRender(t, p, nil)

	// Render concurrently too: the shared templates must be safe under -race.
	var wg sync.WaitGroup
	pkgs := make([]*Package, 8)
	for i := range pkgs {
		wg.Go(func() { pkgs[i] = mustRender(t, p, nil) })
	}
	wg.Wait()

	for _, pkg := range pkgs {
		for _, name := range Files {
			a, ha := mustFile(t, first, name)
			b, hb := mustFile(t, pkg, name)
			if !bytes.Equal(a, b) || ha != hb {
				t.Errorf("%s differs between renders", name)
			}
		}
	}
}

func TestKnownOverridable(t *testing.T) {
	tests := []struct {
		name               string
		known, overridable bool
	}{
		{SkillFile, true, true},
		{HeartbeatFile, true, true},
		{RulesFile, true, true},
		{APIFile, true, true},
		{IndexFile, true, false},
		{"skill.md", false, false},
		{"", false, false},
		{"../SKILL.md", false, false},
		{"NOTES.md", false, false},
	}
	for _, tt := range tests {
		if got := Known(tt.name); got != tt.known {
			t.Errorf("Known(%q) = %v, want %v", tt.name, got, tt.known)
		}
		if got := Overridable(tt.name); got != tt.overridable {
			t.Errorf("Overridable(%q) = %v, want %v", tt.name, got, tt.overridable)
		}
	}
}

func TestFileUnknown(t *testing.T) {
	pkg := mustRender(t, sampleParams(), nil)
	if _, _, ok := pkg.File("NOTES.md"); ok {
		t.Error("File(NOTES.md) found")
	}
}

func TestHash(t *testing.T) {
	tests := []struct {
		in   string
		want string
	}{
		{"", "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"},
		{"abc", "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"},
	}
	format := regexp.MustCompile(`^sha256:[0-9a-f]{64}$`)
	for _, tt := range tests {
		got := Hash([]byte(tt.in))
		if got != tt.want || !format.MatchString(got) {
			t.Errorf("Hash(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestContentType(t *testing.T) {
	tests := []struct{ name, want string }{
		{SkillFile, "text/markdown; charset=utf-8"},
		{HeartbeatFile, "text/markdown; charset=utf-8"},
		{RulesFile, "text/markdown; charset=utf-8"},
		{APIFile, "text/markdown; charset=utf-8"},
		{IndexFile, "application/json"},
	}
	for _, tt := range tests {
		if got := ContentType(tt.name); got != tt.want {
			t.Errorf("ContentType(%q) = %q, want %q", tt.name, got, tt.want)
		}
	}
}

func TestHumanBytes(t *testing.T) {
	tests := []struct {
		in   int64
		want string
	}{
		{2048, "2 KiB (2048 bytes)"},
		{1000, "1000 bytes"},
		{32 << 20, "32 MiB (33554432 bytes)"},
		{1 << 30, "1 GiB (1073741824 bytes)"},
		{1500000, "1.4 MiB (1500000 bytes)"},
	}
	for _, tt := range tests {
		if got := humanBytes(tt.in); got != tt.want {
			t.Errorf("humanBytes(%d) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

// TestRenderFileMatchesRender: rendering one file gives exactly what the whole package holds.
func TestRenderFileMatchesRender(t *testing.T) {
	p := sampleParams()
	overrides := map[string]string{RulesFile: "# our rules\n"}
	pkg, err := Render(p, overrides)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range append(slices.Clone(Files), "nope.md") {
		content, hash, ok, err := RenderFile(p, overrides, name)
		want, wantHash, wantOK := pkg.File(name)
		if err != nil || ok != wantOK || hash != wantHash || !bytes.Equal(content, want) {
			t.Errorf("RenderFile(%s) = %d bytes, %s, %v, %v; Render has %d bytes, %s, %v",
				name, len(content), hash, ok, err, len(want), wantHash, wantOK)
		}
	}
}
