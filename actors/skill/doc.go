// Package skill renders the skill package that every heepr agent downloads.
//
// An agent learns how to talk to heeprd from five files: SKILL.md (setup and the run loop),
// HEARTBEAT_EVENTS.md (poll cadence and how to answer each event), RULES.md (platform policy,
// also attached to work events), API.md (the endpoint reference) and skill.json (an index of
// the other four with their sizes and SHA-256 digests). The text depends on the agent: its id,
// its poll cadence, the server's public URL and the limits the server enforces all appear in
// the files, so a package is rendered per agent rather than served from static files.
//
// The four Markdown templates are embedded in the binary and parsed once when the package is
// initialised, so a broken template stops the program at start-up instead of on the first
// download. An agent's owner may replace any Markdown file with text of their own; Render puts
// that text in place verbatim. skill.json is never overridden: it is always generated from
// the final files, so its digests match what the agent downloads.
//
// A rendered Package is immutable and safe for concurrent use; callers cache it per agent and
// render again when the agent's settings or overrides change.
package skill
