package actors

import (
	"crypto/sha256"
	"strconv"
	"strings"
	"testing"
)

const (
	goodID     = "agt_k3j5m2n7p4q6r6s2"
	goodSecret = "abcdefghijklmnopqrstuvwxyz234567"
)

func TestNewAgentIDAndSecret(t *testing.T) {
	seen := make(map[string]bool)
	for range 1000 {
		id := NewAgentID()
		if !ValidAgentID(id) || len(id) != len(AgentPrefix)+16 {
			t.Fatalf("NewAgentID() = %q, not valid", id)
		}
		if seen[id] {
			t.Fatalf("NewAgentID() repeated %q", id)
		}
		seen[id] = true
		s := NewSecret()
		if len(s) != 32 || !isBase32(s) {
			t.Fatalf("NewSecret() = %q", s)
		}
	}
	if got, want := HashSecret(goodSecret), sha256.Sum256([]byte(goodSecret)); got != want {
		t.Errorf("HashSecret is not SHA-256")
	}
}

func TestValidAgentID(t *testing.T) {
	tests := []struct {
		name string
		id   string
		want bool
	}{
		{"good", goodID, true},
		{"all digits 2-7", "agt_2345672345672345", true},
		{"no prefix", "k3j5m2n7p4q6r6s2", false},
		{"wrong prefix", "agx_k3j5m2n7p4q6r6s2", false},
		{"short", goodID[:len(goodID)-1], false},
		{"long", goodID + "a", false},
		{"uppercase", "agt_K3j5m2n7p4q6r6s2", false},
		{"digit 1", "agt_13j5m2n7p4q6r6s2", false},
		{"digit 8", "agt_83j5m2n7p4q6r6s2", false},
		{"contract-notes example (has an 8)", "agt_k3j5m2n7p4q6r8s2", false},
		{"underscore", "agt_k3j5m2n7_4q6r6s2", false},
		{"empty", "", false},
		{"non-ascii", "agt_k3j5m2n7p4q6r6é", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := ValidAgentID(tc.id); got != tc.want {
				t.Errorf("ValidAgentID(%q) = %v, want %v", tc.id, got, tc.want)
			}
		})
	}
}

func TestCredentialRoundTrip(t *testing.T) {
	for _, prefix := range []string{BootstrapPrefix, KeyPrefix} {
		t.Run(prefix, func(t *testing.T) {
			for range 100 {
				id, secret := NewAgentID(), NewSecret()
				c := FormatCredential(prefix, id, secret)
				if !strings.HasPrefix(c, prefix) {
					t.Fatalf("%q lacks prefix", c)
				}
				gotID, gotSecret, ok := ParseCredential(prefix, c)
				if !ok || gotID != id || gotSecret != secret {
					t.Fatalf("ParseCredential(%q) = %q, %q, %v", c, gotID, gotSecret, ok)
				}
			}
		})
	}
}

func TestParseCredentialRejects(t *testing.T) {
	key := FormatCredential(KeyPrefix, goodID, goodSecret)
	boot := FormatCredential(BootstrapPrefix, goodID, goodSecret)
	tests := []struct {
		name, prefix, cred string
	}{
		{"bootstrap token as key", KeyPrefix, boot},
		{"key as bootstrap token", BootstrapPrefix, key},
		{"test key prefix", KeyPrefix, "sk_test_" + goodID + "_" + goodSecret},
		{"no prefix", KeyPrefix, goodID + "_" + goodSecret},
		{"empty", KeyPrefix, ""},
		{"prefix only", KeyPrefix, KeyPrefix},
		{"short secret", KeyPrefix, key[:len(key)-1]},
		{"long secret", KeyPrefix, key + "a"},
		{"short agent id", KeyPrefix, KeyPrefix + goodID[:len(goodID)-1] + "_" + goodSecret + "a"},
		{"uppercase secret", KeyPrefix, KeyPrefix + goodID + "_" + strings.ToUpper(goodSecret)},
		{"uppercase id", KeyPrefix, KeyPrefix + strings.ToUpper(goodID[:4]) + goodID[4:] + "_" +
			goodSecret},
		{"uppercase prefix", KeyPrefix, strings.ToUpper(KeyPrefix) + goodID + "_" + goodSecret},
		{"underscore in secret", KeyPrefix, KeyPrefix + goodID + "_" + goodSecret[:31] + "_"},
		{"underscore at start of secret", KeyPrefix, KeyPrefix + goodID + "__" + goodSecret[1:]},
		{"missing separator", KeyPrefix, KeyPrefix + goodID + goodSecret},
		{"missing separator, padded", KeyPrefix, KeyPrefix + goodID + "a" + goodSecret},
		{"dash separator", KeyPrefix, KeyPrefix + goodID + "-" + goodSecret},
		{"digit 0 in secret", KeyPrefix, KeyPrefix + goodID + "_0" + goodSecret[1:]},
		{"padding in secret", KeyPrefix, KeyPrefix + goodID + "_" + goodSecret[:31] + "="},
		{"wrong id prefix", KeyPrefix, KeyPrefix + "agx_" + goodID[4:] + "_" + goodSecret},
		{"space", KeyPrefix, " " + key},
		{"trailing newline", KeyPrefix, key + "\n"},
		{"multibyte at the end", KeyPrefix, key[:len(key)-2] + "é"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if id, secret, ok := ParseCredential(tc.prefix, tc.cred); ok || id != "" ||
				secret != "" {
				t.Errorf("ParseCredential(%q, %q) = %q, %q, %v; want rejected", tc.prefix,
					tc.cred, id, secret, ok)
			}
		})
	}
}

func TestIDWithSeq(t *testing.T) {
	tests := []struct {
		prefix string
		seq    uint64
		want   string
	}{
		{OrderPrefix, 1, "ord_k3j5m2n7p4q6r6s2_1"},
		{OrderPrefix, 10, "ord_k3j5m2n7p4q6r6s2_10"},
		{EventPrefix, 7, "evt_k3j5m2n7p4q6r6s2_7"},
		{OrderPrefix, 1<<64 - 1, "ord_k3j5m2n7p4q6r6s2_18446744073709551615"},
	}
	for _, tc := range tests {
		t.Run(tc.want, func(t *testing.T) {
			if got := idWithSeq(tc.prefix, goodID, tc.seq); got != tc.want {
				t.Errorf("idWithSeq = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestAgentOfOrder(t *testing.T) {
	part := goodID[len(AgentPrefix):]
	tests := []struct {
		name, id string
		want     string // "" for rejected
	}{
		{"first", "ord_" + part + "_1", goodID},
		{"large", "ord_" + part + "_123456789", goodID},
		{"max uint64", "ord_" + part + "_18446744073709551615", goodID},
		{"prefix only", "ord_", ""},
		{"empty", "", ""},
		{"no sequence", "ord_" + part + "_", ""},
		{"no separator", "ord_" + part + "1", ""},
		{"zero", "ord_" + part + "_0", ""},
		{"leading zero", "ord_" + part + "_01", ""},
		{"leading zeros", "ord_" + part + "_0001", ""},
		{"plus sign", "ord_" + part + "_+1", ""},
		{"minus sign", "ord_" + part + "_-1", ""},
		{"letters", "ord_" + part + "_1a", ""},
		{"hex", "ord_" + part + "_0x1", ""},
		{"underscore in number", "ord_" + part + "_1_000", ""},
		{"space", "ord_" + part + "_ 1", ""},
		{"overflow", "ord_" + part + "_18446744073709551616", ""},
		{"huge", "ord_" + part + "_" + strings.Repeat("9", 40), ""},
		{"event id", "evt_" + part + "_1", ""},
		{"agent id with prefix", "ord_" + goodID + "_1", ""},
		{"short agent part", "ord_" + part[1:] + "_1", ""},
		{"long agent part", "ord_" + part + "a_1", ""},
		{"uppercase agent part", "ord_" + strings.ToUpper(part) + "_1", ""},
		{"underscore in agent part", "ord_" + part[:15] + "__1", ""},
		{"digit 1 in agent part", "ord_1" + part[1:] + "_1", ""},
		{"unicode digit", "ord_" + part + "_١", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := AgentOfOrder(tc.id)
			if ok != (tc.want != "") || (ok && got != tc.want) {
				t.Errorf("AgentOfOrder(%q) = %q, %v; want %q", tc.id, got, ok, tc.want)
			}
		})
	}
}

func TestSecretHashText(t *testing.T) {
	h := HashSecret(goodSecret)
	b, err := h.MarshalText()
	if err != nil || len(b) != 64 {
		t.Fatalf("MarshalText = %q, %v", b, err)
	}
	var back SecretHash
	if err := back.UnmarshalText(b); err != nil || back != h {
		t.Fatalf("UnmarshalText round trip = %x, %v", back, err)
	}
	tests := []struct {
		name string
		text string
	}{
		{"empty", ""},
		{"short", string(b[:62])},
		{"long", string(b) + "00"},
		{"odd", string(b) + "0"},
		{"not hex", "zz" + string(b[2:])},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var x SecretHash
			if err := x.UnmarshalText([]byte(tc.text)); err == nil {
				t.Errorf("UnmarshalText(%q) accepted", tc.text)
			}
		})
	}
}

func FuzzParseCredential(f *testing.F) {
	for _, s := range []string{
		FormatCredential(KeyPrefix, goodID, goodSecret),
		FormatCredential(BootstrapPrefix, goodID, goodSecret),
		KeyPrefix + goodID + goodSecret + "_",
		KeyPrefix + goodID + "_" + strings.ToUpper(goodSecret),
		"", KeyPrefix, BootstrapPrefix, "sk_live_agt__", "bs_agt_" + strings.Repeat("_", 49),
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		for _, prefix := range []string{BootstrapPrefix, KeyPrefix} {
			id, secret, ok := ParseCredential(prefix, s)
			if !ok {
				if id != "" || secret != "" {
					t.Fatalf("rejected %q but returned %q, %q", s, id, secret)
				}
				continue
			}
			if !ValidAgentID(id) || len(secret) != 32 || !isBase32(secret) {
				t.Fatalf("accepted %q as %q, %q", s, id, secret)
			}
			if back := FormatCredential(prefix, id, secret); back != s {
				t.Fatalf("%q re-formats to %q", s, back)
			}
		}
	})
}

func FuzzAgentOfOrder(f *testing.F) {
	part := goodID[len(AgentPrefix):]
	for _, s := range []string{
		"ord_" + part + "_1", "ord_" + part + "_18446744073709551615",
		"ord_" + part + "_18446744073709551616", "ord_" + part + "_01", "ord_" + part + "_",
		"ord_", "", "ord_" + part + "_+1", "ord_" + strings.Repeat("_", 18),
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		agentID, ok := AgentOfOrder(s)
		if !ok {
			return
		}
		if !ValidAgentID(agentID) {
			t.Fatalf("AgentOfOrder(%q) accepted invalid agent %q", s, agentID)
		}
		seqText := s[len(OrderPrefix)+agentIDChars+1:]
		seq, err := strconv.ParseUint(seqText, 10, 64)
		if err != nil {
			t.Fatalf("AgentOfOrder(%q) accepted sequence %q: %v", s, seqText, err)
		}
		if back := idWithSeq(OrderPrefix, agentID, seq); back != s {
			t.Fatalf("%q re-formats to %q", s, back)
		}
	})
}
