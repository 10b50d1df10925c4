package main

import (
	"errors"
	"io"
	"strings"
	"testing"
)

func TestLoopbackAddr(t *testing.T) {
	tests := []struct {
		raw      string
		want     string
		loopback bool // false: refused as not loopback (other refusals leave it true)
	}{
		{"http://127.0.0.1:8080", "127.0.0.1:8080", true},
		{"http://127.0.0.1:8080/", "127.0.0.1:8080", true},
		{"http://127.1.2.3:80", "127.1.2.3:80", true},
		{"http://[::1]:9464", "[::1]:9464", true},
		{"http://localhost:8080", "127.0.0.1:8080", true},
		{"http://LOCALHOST:8080", "127.0.0.1:8080", true},
		{"http://10.0.0.1:8080", "", false},
		{"http://192.168.1.10:8080", "", false},
		{"http://0.0.0.0:8080", "", false},
		{"http://[::]:8080", "", false},
		{"http://example.com:8080", "", false},
		{"http://127.0.0.1.nip.io:8080", "", false},
		{"http://localhost.example.com:8080", "", false},
		{"https://127.0.0.1:8443", "", true},
		{"http://127.0.0.1", "", true},
		{"http://127.0.0.1:0", "", true},
		{"http://127.0.0.1:8080/api", "", true},
		{"http://user:pw@127.0.0.1:8080", "", true},
		{"127.0.0.1:8080", "", true},
		{"", "", true},
	}
	for _, tt := range tests {
		t.Run(tt.raw, func(t *testing.T) {
			got, err := loopbackAddr("target", tt.raw)
			if tt.want != "" {
				if err != nil || got != tt.want {
					t.Fatalf("= %q, %v; want %q", got, err, tt.want)
				}
				return
			}
			if err == nil {
				t.Fatalf("= %q, accepted; want refused", got)
			}
			if errors.Is(err, errNotLoopback) == tt.loopback {
				t.Errorf("error %q: refused as not loopback: %v, want %v", err,
					errors.Is(err, errNotLoopback), !tt.loopback)
			}
			if !strings.Contains(err.Error(), "--target") {
				t.Errorf("error %q does not name the flag", err)
			}
		})
	}
}

func TestParseOptions(t *testing.T) {
	tests := []struct {
		name    string
		mode    string
		args    []string
		wantErr string // "" for success
	}{
		{"spawn", "poll", []string{"--spawn", "bin/heeprd"}, ""},
		{"target", "poll", []string{"--target", "http://127.0.0.1:1",
			"--ops", "http://[::1]:2"}, ""},
		{"neither", "poll", nil, "exactly one of --spawn and --target"},
		{"both", "poll", []string{"--spawn", "x", "--target", "http://127.0.0.1:1",
			"--ops", "http://127.0.0.1:2"}, "exactly one"},
		{"target without ops", "poll", []string{"--target", "http://127.0.0.1:1"}, "needs --ops"},
		{"server args need spawn", "poll", []string{"--target", "http://127.0.0.1:1",
			"--ops", "http://127.0.0.1:2", "--server-args", "--agent-rate=0"},
			"only with --spawn"},
		{"server args may not move listeners", "poll", []string{"--spawn", "x",
			"--server-args", "--log-level=warn --addr=0.0.0.0:80"}, "must not set --addr"},
		{"unbounded duration", "poll", []string{"--spawn", "x", "--duration", "2h"}, "at most 1h"},
		{"zero requests", "poll", []string{"--spawn", "x", "--requests", "0"}, "--requests"},
		{"jitter", "mixed", []string{"--spawn", "x", "--jitter", "1.5"}, "--jitter"},
		{"ceiling needs no target", "ceiling", []string{"--duration", "1s"}, ""},
		{"pin with spawn", "poll", []string{"--spawn", "x", "--pin", "--ceiling"}, ""},
		{"pin with target", "poll", []string{"--target", "http://127.0.0.1:1",
			"--ops", "http://127.0.0.1:2", "--pin"}, "--pin needs --spawn"},
		{"pin=false with target", "poll", []string{"--target", "http://127.0.0.1:1",
			"--ops", "http://127.0.0.1:2", "--pin=false"}, ""},
		{"pin ceiling", "ceiling", []string{"--pin"}, ""},
		{"pin is no mixed flag", "mixed", []string{"--spawn", "x", "--pin"},
			"flag provided but not defined: -pin"},
		{"pin is no crash flag", "crash", []string{"--spawn", "x", "--pin"},
			"flag provided but not defined: -pin"},
		{"ceiling server", ceilingServerMode, []string{"--addr", "127.0.0.1:0"}, ""},
		{"ceiling server default addr", ceilingServerMode, nil, ""},
		{"ceiling server on ::1", ceilingServerMode, []string{"--addr", "[::1]:9000"}, ""},
		{"ceiling server not remote", ceilingServerMode, []string{"--addr", "0.0.0.0:80"},
			"not a loopback address"},
		{"ceiling server port", ceilingServerMode, []string{"--addr", "127.0.0.1:70000"},
			"port from 0 to 65535"},
		{"ceiling server no load flags", ceilingServerMode, []string{"--duration", "1s"},
			"flag provided but not defined"},
		{"status needs a target", "status", nil, "exactly one of --spawn and --target"},
		{"status is closed loop", "status", []string{"--spawn", "x", "--rate", "10"},
			"flag provided but not defined: -rate"},
		{"status rounds", "status", []string{"--spawn", "x", "--rounds", "0"}, "--rounds"},
		{"status pinned", "status", []string{"--spawn", "x", "--pin"}, ""},
		{"status pins only what it spawns", "status", []string{"--target", "http://127.0.0.1:1",
			"--ops", "http://127.0.0.1:2", "--keys", "k", "--pin"}, "--pin needs --spawn"},
		{"status target", "status", []string{"--target", "http://127.0.0.1:1",
			"--ops", "http://127.0.0.1:2", "--keys", "k", "--rounds", "3"}, ""},
		{"restart", "restart", []string{"--spawn", "x", "--data", "d", "--settle", "0s"}, ""},
		{"restart needs spawn", "restart", []string{"--data", "d"}, "restart needs --spawn"},
		{"restart needs data", "restart", []string{"--spawn", "x"}, "restart needs --data"},
		{"restart rounds", "restart", []string{"--spawn", "x", "--data", "d", "--rounds", "101"},
			"--rounds must be 1 to 100"},
		{"restart settle", "restart", []string{"--spawn", "x", "--data", "d", "--settle", "2m"},
			"--settle"},
		{"restart server args", "restart", []string{"--spawn", "x", "--data", "d",
			"--server-args", "--data=/elsewhere"}, "must not set"},
		{"restart spawns only", "restart", []string{"--spawn", "x", "--data", "d",
			"--target", "http://127.0.0.1:1"}, "flag provided but not defined: -target"},
		{"rss sampling too fast", "poll", []string{"--spawn", "x", "--rss-every", "10ms"},
			"--rss-every"},
		{"rss sampling off", "mixed", []string{"--spawn", "x", "--rss-every", "0s"}, ""},
		{"unknown mode", "explode", nil, "unknown mode"},
		{"stray argument", "provision", []string{"--spawn", "x", "extra"}, "unexpected argument"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := parseOptions(tt.mode, tt.args, io.Discard)
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("error %v", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Fatalf("error %v, want one containing %q", err, tt.wantErr)
			}
		})
	}
}

func TestOpenTargetRefusesRemote(t *testing.T) {
	_, err := parseOptions("poll", []string{"--target", "http://127.0.0.1:8080",
		"--ops", "http://192.0.2.1:9464"}, io.Discard)
	if !errors.Is(err, errNotLoopback) {
		t.Fatalf("parseOptions: %v, want a not-loopback refusal of --ops", err)
	}
	o := &options{target: "http://192.0.2.1:8080", ops: "http://127.0.0.1:9464"}
	if _, err := openTarget(t.Context(), o, io.Discard); !errors.Is(err, errNotLoopback) {
		t.Fatalf("openTarget: %v, want a not-loopback refusal", err)
	}
}
