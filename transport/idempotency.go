package transport

import (
	"crypto/sha256"
	"encoding/json"
	"fmt"

	"github.com/valyala/fasthttp"

	"github.com/heepr/heeprd/actors"
)

const headerIdempotencyKey = "Idempotency-Key"

// idempotency reads the Idempotency-Key header and fingerprints the decoded request, so that a
// retry matches whatever bytes its client framed it in (a multipart boundary changes each time).
// Without the header the request is not idempotent.
func idempotency(ctx *fasthttp.RequestCtx, route string, decoded any) (actors.Idempotency, error) {
	key := ctx.Request.Header.Peek(headerIdempotencyKey)
	if len(key) == 0 {
		return actors.Idempotency{}, nil
	}
	if len(key) > 255 {
		return actors.Idempotency{}, invalid("the %s header is longer than 255 bytes",
			headerIdempotencyKey)
	}
	for _, c := range key {
		if c < 0x21 || c > 0x7e {
			return actors.Idempotency{}, invalid("the %s header must be printable ASCII "+
				"without spaces", headerIdempotencyKey)
		}
	}

	canon, err := json.Marshal(decoded)
	if err != nil {
		return actors.Idempotency{}, fmt.Errorf("%w: fingerprint request: %w", actors.ErrInternal, err)
	}
	h := sha256.New()
	h.Write([]byte(route))
	h.Write([]byte{0})
	h.Write(canon)
	var fp actors.Fingerprint
	h.Sum(fp[:0])
	return actors.Idempotency{Key: string(key), Fingerprint: fp}, nil
}

// deliveryFingerprint is what a delivery is compared on: its files by name and content hash.
type deliveryFingerprint struct {
	OrderID string            `json:"order_id"`
	Text    string            `json:"text"`
	URLs    []string          `json:"urls"`
	Files   []actors.FileMeta `json:"files"`
}

func newDeliveryFingerprint(m *actors.Deliver) deliveryFingerprint {
	fp := deliveryFingerprint{OrderID: m.OrderID, Text: m.Text, URLs: m.URLs}
	for _, f := range m.Files {
		fp.Files = append(fp.Files, f.FileMeta)
	}
	return fp
}
