package main

import (
	"io"
	"net"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestParseConfig(t *testing.T) {
	cases := []struct {
		name    string
		args    []string
		env     map[string]string
		check   func(*config) bool
		wantErr string
	}{
		{"defaults", nil, nil, func(c *config) bool {
			return c.Addr == ":8080" && c.OpsAddr == "127.0.0.1:9464" && c.Fsync &&
				c.OnlineWindow == time.Hour && c.Limits.MaxBodyBytes == 34<<20
		}, ""},
		{"env twin", nil, map[string]string{"HEEPR_OPS_ADDR": "127.0.0.1:1", "HEEPR_FSYNC": "false"},
			func(c *config) bool { return c.OpsAddr == "127.0.0.1:1" && !c.Fsync }, ""},
		{"flag wins over env", []string{"--online-window", "2m"},
			map[string]string{"HEEPR_ONLINE_WINDOW": "5m"},
			func(c *config) bool { return c.OnlineWindow == 2*time.Minute }, ""},
		{"bad env value", nil, map[string]string{"HEEPR_ONLINE_WINDOW": "soon"}, nil,
			"HEEPR_ONLINE_WINDOW"},
		{"bad level", []string{"--log-level", "loud"}, nil, nil, "--log-level"},
		{"bad format", []string{"--log-format", "xml"}, nil, nil, "--log-format"},
		{"tiny window", []string{"--online-window", "1ms"}, nil, nil, "--online-window"},
		{"bad addr", []string{"--addr", "nope"}, nil, nil, "--addr"},
		{"stray argument", []string{"serve"}, nil, nil, "unexpected argument"},
		{"zero limit", []string{"--max-files", "0"}, nil, nil, "count limits"},
		{"no connections", []string{"--max-conns", "0"}, nil, nil, "--max-conns"},
		{"too many connections", []string{"--max-conns", "1048577"}, nil, nil, "--max-conns"},
		{"most connections", []string{"--max-conns", "1048576"}, nil,
			func(c *config) bool { return c.MaxConns == 1<<20 }, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			getenv := func(k string) string { return tc.env[k] }
			c, _, err := parseConfig(tc.args, getenv, nil, io.Discard)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want one mentioning %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("unexpected error: %v", err)
			}
			if !tc.check(c) {
				t.Errorf("config not as expected: %+v", c)
			}
		})
	}
}

func TestUnknownEnvIsReported(t *testing.T) {
	environ := []string{"HEEPR_ADDR=:1", "HEEPR_ONLINE_WINDOWS=1h", "PATH=/bin"}
	_, unknown, err := parseConfig(nil, func(string) string { return "" }, environ, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(unknown, []string{"HEEPR_ONLINE_WINDOWS"}) {
		t.Errorf("unknown = %v, want [HEEPR_ONLINE_WINDOWS]", unknown)
	}
}

func TestEveryFlagHasHelpWithEnvTwin(t *testing.T) {
	var out strings.Builder
	_, _, err := parseConfig([]string{"--help"}, func(string) string { return "" }, nil, &out)
	if err == nil {
		t.Fatal("--help returned no error")
	}
	for _, name := range []string{"addr", "ops-addr", "data", "in-memory", "admin-token",
		"online-window", "snapshot-interval", "log-level", "log-format", "fsync"} {
		want := "--" + name + " (env " + envName(name)
		if !strings.Contains(out.String(), want) {
			t.Errorf("help lacks %q", want)
		}
	}
}

func TestPublicURL(t *testing.T) {
	addr := func(s string) net.Addr { a, _ := net.ResolveTCPAddr("tcp", s); return a }
	cases := []struct {
		flag string
		ln   string
		want string
	}{
		{"", "0.0.0.0:8080", "http://127.0.0.1:8080"},
		{"", "[::]:8080", "http://127.0.0.1:8080"},
		{"", "10.1.2.3:81", "http://10.1.2.3:81"},
		{"https://api.example.com/", "0.0.0.0:8080", "https://api.example.com"},
	}
	for _, tc := range cases {
		c := &config{PublicURL: tc.flag}
		if got := c.publicURL(addr(tc.ln)); got != tc.want {
			t.Errorf("publicURL(%q, %s) = %q, want %q", tc.flag, tc.ln, got, tc.want)
		}
	}
}
