package actors

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base32"
	"strconv"
	"strings"
)

// Identifier and secret shapes. A key and a bootstrap token carry the agent id beside the secret,
// so a request can be routed to its agent (on any node) before anything is looked up; only the
// secret authenticates, and only its SHA-256 is kept.
const (
	AgentPrefix     = "agt_"
	OrderPrefix     = "ord_"
	EventPrefix     = "evt_"
	BootstrapPrefix = "bs_"
	KeyPrefix       = "sk_live_"

	agentIDChars = 16 // 80 bits: ids are public, so they only need to be unique
	secretChars  = 32 // 160 bits from crypto/rand
)

// IDAlphabet spells ids and secrets: RFC 4648 base32 in lower case. No '_' can appear, so ids
// and secrets can be joined with '_' and split again. Each character carries 5 bits, which lets
// storage pack an agent id's 16 characters after its prefix into 10 bytes.
const IDAlphabet = "abcdefghijklmnopqrstuvwxyz234567"

// lowerBase32 encodes random bytes as IDAlphabet characters, without padding.
var lowerBase32 = base32.NewEncoding(IDAlphabet).WithPadding(base32.NoPadding)

// SecretHash is the SHA-256 of a token's or key's secret part.
type SecretHash [32]byte

// HashSecret hashes the secret part of a token or key.
func HashSecret(secret string) SecretHash { return sha256.Sum256([]byte(secret)) }

func randomChars(n int) string {
	buf := make([]byte, (n*5+7)/8)
	if _, err := rand.Read(buf); err != nil {
		panic("BUG: crypto/rand failed: " + err.Error())
	}
	return lowerBase32.EncodeToString(buf)[:n]
}

// NewAgentID returns a fresh random agent id.
func NewAgentID() string { return AgentPrefix + randomChars(agentIDChars) }

// NewSecret returns a fresh random secret for a token or key.
func NewSecret() string { return randomChars(secretChars) }

// ValidAgentID reports whether s has the shape of an agent id.
func ValidAgentID(s string) bool {
	rest, ok := strings.CutPrefix(s, AgentPrefix)
	return ok && len(rest) == agentIDChars && isBase32(rest)
}

func isBase32(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < 'a' || c > 'z') && (c < '2' || c > '7') {
			return false
		}
	}
	return true
}

// FormatCredential joins a prefix (BootstrapPrefix or KeyPrefix), an agent id and a secret.
func FormatCredential(prefix, agentID, secret string) string {
	return prefix + agentID + "_" + secret
}

// ParseCredential splits a bootstrap token or API key with the given prefix into its agent id and
// secret. It reports false for anything that does not have exactly that shape.
func ParseCredential(prefix, credential string) (agentID, secret string, ok bool) {
	rest, ok := strings.CutPrefix(credential, prefix)
	if !ok || len(rest) != len(AgentPrefix)+agentIDChars+1+secretChars {
		return "", "", false
	}
	agentID, secret = rest[:len(AgentPrefix)+agentIDChars], rest[len(AgentPrefix)+agentIDChars+1:]
	if rest[len(agentID)] != '_' || !ValidAgentID(agentID) || !isBase32(secret) {
		return "", "", false
	}
	return agentID, secret, true
}

// idWithSeq builds an order or event id from its agent and a per-agent sequence number.
func idWithSeq(prefix, agentID string, seq uint64) string {
	return prefix + agentID[len(AgentPrefix):] + "_" + strconv.FormatUint(seq, 10)
}

// AgentOfOrder returns the agent an order id belongs to, so a request for an order can be routed to
// its owner without an index. It reports false when id is not shaped like an order id.
func AgentOfOrder(id string) (string, bool) {
	rest, ok := strings.CutPrefix(id, OrderPrefix)
	if !ok || len(rest) < agentIDChars+2 || rest[agentIDChars] != '_' {
		return "", false
	}
	seq := rest[agentIDChars+1:]
	if _, err := strconv.ParseUint(seq, 10, 64); err != nil || seq[0] == '0' || seq[0] == '+' {
		return "", false
	}
	agentID := AgentPrefix + rest[:agentIDChars]
	if !ValidAgentID(agentID) {
		return "", false
	}
	return agentID, true
}
