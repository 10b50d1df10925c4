package transport

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"mime/multipart"
	"strings"
	"testing"

	"github.com/heepr/heeprd/actors"
	"github.com/heepr/heeprd/actors/skill"
)

func sha256Hex(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

func testServer() *Server {
	return &Server{cfg: Config{Limits: skill.Limits{
		MaxBodyBytes: 1 << 20, MaxFileBytes: 64, MaxTextBytes: 32, MaxFiles: 2, MaxURLs: 2,
		MaxURLBytes: 64,
	}}}
}

type part struct{ field, file, content string }

func multipartBody(t testing.TB, parts []part) ([]byte, string) {
	t.Helper()
	var buf bytes.Buffer
	w := multipart.NewWriter(&buf)
	for _, p := range parts {
		var err error
		if p.file != "" {
			fw, ferr := w.CreateFormFile(p.field, p.file)
			if ferr == nil {
				_, err = fw.Write([]byte(p.content))
			}
			err = errors.Join(err, ferr)
		} else {
			err = w.WriteField(p.field, p.content)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes(), w.Boundary()
}

func TestDecodeDeliveryMultipart(t *testing.T) {
	cases := []struct {
		name  string
		parts []part
		want  error
		check func(*actors.Deliver) bool
	}{
		{"text urls and a binary file", []part{{"text", "", "done"},
			{"urls", "", "https://a.example/x"}, {"file", "a.bin", "\x00\x01\xff"}}, nil,
			func(m *actors.Deliver) bool {
				return m.Text == "done" && len(m.URLs) == 1 && len(m.Files) == 1 &&
					m.Files[0].Size == 3 && bytes.Equal(m.Files[0].Data, []byte{0, 1, 0xff}) &&
					m.Files[0].SHA256 == sha256Hex([]byte{0, 1, 0xff})
			}},
		{"two files any field name", []part{{"a", "1.txt", "x"}, {"b", "2.txt", "y"}}, nil,
			func(m *actors.Deliver) bool { return len(m.Files) == 2 }},
		{"too many files", []part{{"f", "1", "x"}, {"f", "2", "y"}, {"f", "3", "z"}},
			actors.ErrTooLarge, nil},
		{"file too big", []part{{"f", "big", strings.Repeat("x", 65)}}, actors.ErrTooLarge, nil},
		{"text too long", []part{{"text", "", strings.Repeat("x", 33)}}, actors.ErrTooLarge, nil},
		{"duplicate file name", []part{{"f", "a", "x"}, {"g", "a", "y"}},
			actors.ErrInvalidRequest, nil},
		{"unknown field", []part{{"note", "", "hi"}}, actors.ErrInvalidRequest, nil},
		{"path in file name", []part{{"f", "../../etc/passwd", "x"}}, actors.ErrInvalidRequest, nil},
		{"directory in file name", []part{{"f", "a/b.txt", "x"}}, actors.ErrInvalidRequest, nil},
		{"text twice", []part{{"text", "", "a"}, {"text", "", "b"}}, actors.ErrInvalidRequest, nil},
		{"relative url", []part{{"urls", "", "/x"}}, actors.ErrInvalidRequest, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			body, boundary := multipartBody(t, tc.parts)
			msg := &actors.Deliver{}
			err := testServer().decodeDeliveryMultipart(body, boundary, msg)
			if !errors.Is(err, tc.want) || (tc.want == nil && err != nil) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
			if tc.check != nil && !tc.check(msg) {
				t.Errorf("decoded %+v", msg)
			}
		})
	}
}

// FuzzDecodeDeliveryMultipart throws arbitrary bodies at the multipart decoder: it must never
// panic, and must answer with an invalid request or a payload too large, nothing else.
func FuzzDecodeDeliveryMultipart(f *testing.F) {
	body, boundary := multipartBody(f, []part{{"text", "", "t"}, {"file", "a", "\x00"}})
	f.Add(body, boundary)
	f.Add([]byte("--b\r\nContent-Disposition: form-data; name=\"text\"\r\n\r\nx\r\n--b--"), "b")
	f.Add([]byte("--b\r\n\r\n"), "b")
	f.Add([]byte{}, "")
	f.Fuzz(func(t *testing.T, body []byte, boundary string) {
		msg := &actors.Deliver{}
		err := testServer().decodeDeliveryMultipart(body, boundary, msg)
		if err != nil && !errors.Is(err, actors.ErrInvalidRequest) && !errors.Is(err, actors.ErrTooLarge) {
			t.Fatalf("unexpected error class: %v", err)
		}
		if err == nil && len(msg.Files) > 2 {
			t.Fatalf("%d files accepted, limit is 2", len(msg.Files))
		}
	})
}
