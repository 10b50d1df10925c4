package skill

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/url"
	"strconv"
	"strings"
	"text/template"
	"unicode"
)

// Names of the files in a package, in the order skill.json lists them (skill.json last).
const (
	// SkillFile walks the agent through setup and the event loop.
	SkillFile = "SKILL.md"
	// HeartbeatFile describes the poll cadence and every event kind.
	HeartbeatFile = "HEARTBEAT_EVENTS.md"
	// RulesFile is the platform policy; its text is also sent as "sf" on work events.
	RulesFile = "RULES.md"
	// APIFile is the reference of the agent API.
	APIFile = "API.md"
	// IndexFile lists the other files with their sizes and digests; it is always generated.
	IndexFile = "skill.json"
)

// Files lists every file of a package in index order. Treat it as read-only.
var Files = []string{SkillFile, HeartbeatFile, RulesFile, APIFile, IndexFile}

// markdownFiles is the fixed list the package iterates over; an array, so that a caller
// editing Files cannot change what Render produces.
var markdownFiles = [...]string{SkillFile, HeartbeatFile, RulesFile, APIFile}

// keyFile is where an agent keeps its API key; SKILL.md and the server agree on the name.
const keyFile = ".heepr-marketplace-key"

const (
	markdownType = "text/markdown; charset=utf-8"
	jsonType     = "application/json"
	hashPrefix   = "sha256:"
)

// Known reports whether name is one of Files.
func Known(name string) bool {
	return name == IndexFile || Overridable(name)
}

// Overridable reports whether an owner may replace the file: any of the four Markdown files.
// skill.json is excluded because its digests must describe the files actually served.
func Overridable(name string) bool {
	switch name {
	case SkillFile, HeartbeatFile, RulesFile, APIFile:
		return true
	}
	return false
}

// Limits are the request limits the server enforces on agents. They are printed in API.md
// and skill.json so that an agent can stay inside them instead of discovering them by a 413.
type Limits struct {
	MaxBodyBytes int64 // whole request body
	MaxFileBytes int64 // one file part of a multipart delivery
	MaxTextBytes int64 // one text field (delivery text, messages)
	MaxFiles     int   // file parts per delivery
	MaxURLs      int   // URLs per delivery
	MaxURLBytes  int   // length of one URL
}

// Budget is each agent's request budget as the server enforces it: a token bucket refilled at
// Rate requests per second that holds up to Burst. A Rate of 0 means no budget. API.md states
// it, so that an agent knows its pace before a 429 tells it.
type Budget struct {
	Rate  float64
	Burst float64
}

func (b Budget) validate() error {
	if !(b.Rate >= 0 && b.Burst >= 0) || math.IsInf(b.Rate, 0) || math.IsInf(b.Burst, 0) {
		return fmt.Errorf("budget %+v: rate and burst must be finite and not negative", b)
	}
	return nil
}

// Params are the per-agent values a package is rendered from.
type Params struct {
	AgentID     string // e.g. "agt_k3j5m2n7p4q6r8s2"
	AgentName   string // display name; may be empty
	PollMinutes int    // 1..60
	BaseURL     string // public base of the agent API, no trailing slash: "http://127.0.0.1:8080"
	Limits      Limits
	Budget      Budget
}

// Package is one agent's rendered files. It is immutable and safe for concurrent use.
type Package struct {
	files map[string]file
}

type file struct {
	content []byte
	hash    string
}

// Render renders every file for one agent. overrides maps a file name (one of the .md files) to
// content that replaces the template output verbatim; nil is fine.
func Render(p Params, overrides map[string]string) (*Package, error) {
	if err := p.validate(); err != nil {
		return nil, fmt.Errorf("skill: render: %w", err)
	}
	for name := range overrides {
		if !Overridable(name) {
			return nil, fmt.Errorf("skill: render: override %q: not an overridable file", name)
		}
	}

	v := newView(p)
	pkg := &Package{files: make(map[string]file, len(Files))}
	for _, name := range markdownFiles {
		content, err := renderMarkdown(name, v, overrides)
		if err != nil {
			return nil, fmt.Errorf("skill: render %s: %w", name, err)
		}
		pkg.files[name] = newFile(content)
	}

	index, err := pkg.index(p)
	if err != nil {
		return nil, fmt.Errorf("skill: render %s: %w", IndexFile, err)
	}
	pkg.files[IndexFile] = newFile(index)
	return pkg, nil
}

// RenderFile renders one file of the package, for callers that need just that one: GET /skill
// wants SKILL.md on every tick of every agent, and work events want RULES.md. skill.json
// indexes the other files, so asking for it renders them all. ok is false for a name outside
// Files.
func RenderFile(p Params, overrides map[string]string, name string) (content []byte,
	hash string, ok bool, err error) {
	if name == IndexFile {
		pkg, err := Render(p, overrides)
		if err != nil {
			return nil, "", false, err
		}
		content, hash, ok = pkg.File(name)
		return content, hash, ok, nil
	}
	if !Overridable(name) {
		return nil, "", false, nil
	}
	if err := p.validate(); err != nil {
		return nil, "", false, fmt.Errorf("skill: render: %w", err)
	}
	content, err = renderMarkdown(name, newView(p), overrides)
	if err != nil {
		return nil, "", false, fmt.Errorf("skill: render %s: %w", name, err)
	}
	return content, Hash(content), true, nil
}

// File returns a file's content and its hash ("sha256:<hex>"), or ok=false for a name outside
// Files. The content is shared by every caller, so that serving it costs no copy: never
// modify it.
func (p *Package) File(name string) (content []byte, hash string, ok bool) {
	f, ok := p.files[name]
	if !ok {
		return nil, "", false
	}
	return f.content, f.hash, true
}

// Rules returns the RULES.md text, override included; the server attaches it to work events
// as "sf" so that the policy travels with every order.
func (p *Package) Rules() string {
	return string(p.files[RulesFile].content)
}

// Hash returns "sha256:" followed by the lowercase hex SHA-256 of content: the form used in
// content_hash and ETag values.
func Hash(content []byte) string {
	return hashPrefix + hexDigest(content)
}

// ContentType returns the media type to serve a package file with: JSON for skill.json and
// Markdown for everything else, since the other files are all Markdown.
func ContentType(name string) string {
	if strings.HasSuffix(name, ".json") {
		return jsonType
	}
	return markdownType
}

func hexDigest(content []byte) string {
	sum := sha256.Sum256(content)
	return hex.EncodeToString(sum[:])
}

func newFile(content []byte) file {
	return file{content: content, hash: Hash(content)}
}

// validate rejects values that would make the rendered text wrong or unsafe to copy: the id
// and base URL are pasted unquoted into shell commands, URLs and JSON examples.
func (p Params) validate() error {
	if err := validateAgentID(p.AgentID); err != nil {
		return err
	}
	if strings.IndexFunc(p.AgentName, unicode.IsControl) >= 0 {
		return errors.New("agent name contains control characters")
	}
	if p.PollMinutes < 1 || p.PollMinutes > 60 {
		return fmt.Errorf("poll minutes %d out of range 1..60", p.PollMinutes)
	}
	if err := validateBaseURL(p.BaseURL); err != nil {
		return err
	}
	if err := p.Budget.validate(); err != nil {
		return err
	}
	return p.Limits.validate()
}

func validateAgentID(id string) error {
	if id == "" {
		return errors.New("empty agent id")
	}
	for _, r := range id {
		ok := r == '_' || r == '-' || r >= '0' && r <= '9' || r >= 'a' && r <= 'z' ||
			r >= 'A' && r <= 'Z'
		if !ok {
			return fmt.Errorf("agent id %q: character %q not allowed", id, r)
		}
	}
	return nil
}

func validateBaseURL(base string) error {
	u, err := url.Parse(base)
	if err != nil {
		return fmt.Errorf("base url: %w", err)
	}
	if u.Scheme != "http" && u.Scheme != "https" || u.Host == "" {
		return fmt.Errorf("base url %q: want an absolute http or https URL", base)
	}
	if strings.HasSuffix(base, "/") || u.RawQuery != "" || u.Fragment != "" ||
		strings.ContainsAny(base, " \t'\"") {
		return fmt.Errorf("base url %q: want no trailing slash, query, fragment or quotes", base)
	}
	return nil
}

func (l Limits) validate() error {
	if l.MaxBodyBytes <= 0 || l.MaxFileBytes <= 0 || l.MaxTextBytes <= 0 ||
		l.MaxFiles <= 0 || l.MaxURLs <= 0 || l.MaxURLBytes <= 0 {
		return fmt.Errorf("limits %+v: every limit must be positive", l)
	}
	return nil
}

// index builds skill.json from the already rendered Markdown files, so that the sizes and
// digests it lists are those of the bytes actually served.
func (p *Package) index(params Params) ([]byte, error) {
	idx := indexJSON{
		AgentID:     params.AgentID,
		AgentName:   params.AgentName,
		PollMinutes: params.PollMinutes,
		APIBase:     params.BaseURL + "/api",
		Files:       make([]indexFile, 0, len(markdownFiles)),
		Limits:      newIndexLimits(params.Limits),
	}
	for _, name := range markdownFiles {
		content := p.files[name].content
		idx.Files = append(idx.Files, indexFile{
			Name:   name,
			Size:   len(content),
			SHA256: hexDigest(content),
		})
	}

	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false) // names and URLs read better without \u003c escapes
	enc.SetIndent("", "  ")
	if err := enc.Encode(idx); err != nil {
		return nil, fmt.Errorf("encode: %w", err)
	}
	return buf.Bytes(), nil
}

// indexJSON is the wire form of skill.json; it is separate from Params so that the file
// format cannot change by accident when a Go field is renamed.
type indexJSON struct {
	AgentID     string      `json:"agent_id"`
	AgentName   string      `json:"agent_name"`
	PollMinutes int         `json:"poll_minutes"`
	APIBase     string      `json:"api_base"`
	Files       []indexFile `json:"files"`
	Limits      indexLimits `json:"limits"`
}

type indexFile struct {
	Name   string `json:"name"`
	Size   int    `json:"size"`
	SHA256 string `json:"sha256"`
}

type indexLimits struct {
	MaxBodyBytes int64 `json:"max_body_bytes"`
	MaxFileBytes int64 `json:"max_file_bytes"`
	MaxTextBytes int64 `json:"max_text_bytes"`
	MaxFiles     int   `json:"max_files"`
	MaxURLs      int   `json:"max_urls"`
	MaxURLBytes  int   `json:"max_url_bytes"`
}

func newIndexLimits(l Limits) indexLimits {
	return indexLimits{
		MaxBodyBytes: l.MaxBodyBytes,
		MaxFileBytes: l.MaxFileBytes,
		MaxTextBytes: l.MaxTextBytes,
		MaxFiles:     l.MaxFiles,
		MaxURLs:      l.MaxURLs,
		MaxURLBytes:  l.MaxURLBytes,
	}
}

//go:embed templates/*.tmpl
var templateFS embed.FS

// templates holds one template per Markdown file, named "<file>.tmpl". Executing a parsed
// template is safe for concurrent use, so one set serves every Render call.
var templates = mustParseTemplates()

func mustParseTemplates() *template.Template {
	funcs := template.FuncMap{"bytes": humanBytes, "json": jsonString}
	t, err := template.New("skill").Funcs(funcs).ParseFS(templateFS, "templates/*.tmpl")
	if err != nil {
		panic("BUG: skill: parse templates: " + err.Error())
	}
	for _, name := range markdownFiles {
		if t.Lookup(name+".tmpl") == nil {
			panic("BUG: skill: no template for " + name)
		}
	}
	return t
}

// view is what the templates see: the params plus values derived from them, computed once
// here rather than spelled out with template logic.
type view struct {
	Params
	Name    string // AgentName, or AgentID for an unnamed agent
	APIBase string // BaseURL + "/api", the prefix every example uses
	IDPart  string // the agent id without "agt_", as it appears inside order and event ids
	Every   string // the poll interval in words: "1 minute", "20 minutes"
	KeyFile string
	Pace    string // Budget in words, "" when there is none
}

func newView(p Params) view {
	name := p.AgentName
	if name == "" {
		name = p.AgentID
	}
	every := fmt.Sprintf("%d minutes", p.PollMinutes)
	if p.PollMinutes == 1 {
		every = "1 minute"
	}
	return view{
		Params:  p,
		Every:   every,
		Name:    name,
		APIBase: p.BaseURL + "/api",
		IDPart:  strings.TrimPrefix(p.AgentID, "agt_"),
		KeyFile: keyFile,
		Pace:    pace(p.Budget),
	}
}

// pace puts a budget in words: "**20 requests per second** sustained and bursts of up to
// **100**". A burst counts whole requests, since each takes a whole token.
func pace(b Budget) string {
	if b.Rate == 0 {
		return ""
	}
	unit := "requests"
	if b.Rate == 1 {
		unit = "request"
	}
	return fmt.Sprintf("**%s %s per second** sustained and bursts of up to **%s**",
		strconv.FormatFloat(b.Rate, 'f', -1, 64), unit,
		strconv.FormatFloat(math.Floor(b.Burst), 'f', -1, 64))
}

func renderMarkdown(name string, v view, overrides map[string]string) ([]byte, error) {
	if text, ok := overrides[name]; ok {
		return []byte(text), nil
	}
	var buf bytes.Buffer
	if err := templates.ExecuteTemplate(&buf, name+".tmpl", v); err != nil {
		return nil, fmt.Errorf("execute template: %w", err)
	}
	return buf.Bytes(), nil
}

// humanBytes prints a byte count in binary units with the exact value beside it, so that an
// agent can both read the limit and compare against it.
func humanBytes(n int64) string {
	units := []struct {
		size int64
		name string
	}{{1 << 30, "GiB"}, {1 << 20, "MiB"}, {1 << 10, "KiB"}}
	for _, u := range units {
		if n < u.size {
			continue
		}
		if n%u.size == 0 {
			return fmt.Sprintf("%d %s (%d bytes)", n/u.size, u.name, n)
		}
		return fmt.Sprintf("%.1f %s (%d bytes)", float64(n)/float64(u.size), u.name, n)
	}
	return fmt.Sprintf("%d bytes", n)
}

// jsonString quotes s as a JSON string, for values placed inside JSON examples.
func jsonString(s string) (string, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(s); err != nil {
		return "", fmt.Errorf("quote %q: %w", s, err)
	}
	return strings.TrimSuffix(buf.String(), "\n"), nil
}
