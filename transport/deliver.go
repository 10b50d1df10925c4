package transport

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"strings"
	"unicode/utf8"

	"github.com/valyala/fasthttp"

	"github.com/heepr/heeprd/actors"
)

type deliverJSON struct {
	Text *string  `json:"text"`
	URLs []string `json:"urls"`
}

type deliverReply struct {
	OrderID  string            `json:"order_id"`
	Delivery int               `json:"delivery"`
	State    actors.OrderState `json:"state"`
}

// deliver answers POST /orders/{id}/deliver, with a JSON or a multipart body.
func (s *Server) deliver(ctx *fasthttp.RequestCtx) error {
	agentID, key, err := bearer(ctx)
	if err != nil {
		return err
	}
	msg := &actors.Deliver{Key: key, OrderID: pathParam(ctx, "id")}
	if err := s.decodeDelivery(ctx, msg); err != nil {
		return err
	}
	if msg.Text == "" && len(msg.URLs) == 0 && len(msg.Files) == 0 {
		return invalid("a delivery needs text, urls or at least one file")
	}
	if msg.Idem, err = idempotency(ctx, "deliver", newDeliveryFingerprint(msg)); err != nil {
		return err
	}

	v, err := s.askAgent(agentID, msg)
	if err != nil {
		return err
	}
	r := v.(*actors.DeliverResult)
	return writeJSON(ctx, fasthttp.StatusCreated,
		deliverReply{OrderID: r.OrderID, Delivery: r.Delivery, State: r.State})
}

func (s *Server) decodeDelivery(ctx *fasthttp.RequestCtx, msg *actors.Deliver) error {
	mediaType, params, err := mime.ParseMediaType(string(ctx.Request.Header.ContentType()))
	switch {
	case err == nil && mediaType == "application/json":
		return s.decodeDeliveryJSON(ctx.PostBody(), msg)
	case err == nil && mediaType == "multipart/form-data":
		return s.decodeDeliveryMultipart(ctx.PostBody(), params["boundary"], msg)
	default:
		return fmt.Errorf("%w: send application/json or multipart/form-data", ErrUnsupportedMedia)
	}
}

func (s *Server) decodeDeliveryJSON(body []byte, msg *actors.Deliver) error {
	var b deliverJSON
	if err := decodeJSON(body, &b, false); err != nil {
		return err
	}
	if b.Text != nil {
		if err := checkText("text", *b.Text, s.cfg.Limits.MaxTextBytes); err != nil {
			return err
		}
		msg.Text = *b.Text
	}
	if err := checkURLs(b.URLs, s.cfg.Limits); err != nil {
		return err
	}
	msg.URLs = b.URLs
	return nil
}

// decodeDeliveryMultipart reads text, urls and file parts. Every file is copied out of the
// request (fasthttp reuses its buffers) and hashed on arrival.
func (s *Server) decodeDeliveryMultipart(body []byte, boundary string, msg *actors.Deliver) error {
	if boundary == "" {
		return invalid("multipart body without a boundary")
	}
	mr := multipart.NewReader(bytes.NewReader(body), boundary)
	for {
		part, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return invalid("broken multipart body: %v", err)
		}
		err = s.readPart(part, msg)
		part.Close()
		if err != nil {
			return err
		}
	}
	return checkURLs(msg.URLs, s.cfg.Limits)
}

func (s *Server) readPart(part *multipart.Part, msg *actors.Deliver) error {
	if rawFileName(part) != "" {
		return s.readFilePart(part, msg)
	}
	value, err := readLimited(part, s.cfg.Limits.MaxTextBytes, "--max-text-bytes")
	if err != nil {
		return err
	}
	switch name := part.FormName(); name {
	case "text":
		if msg.Text != "" {
			return invalid("multipart field \"text\" given twice")
		}
		msg.Text = string(value)
		return checkText("text", msg.Text, s.cfg.Limits.MaxTextBytes)
	case "urls":
		msg.URLs = append(msg.URLs, string(value))
		return nil
	default:
		return invalid("unknown multipart field %q; use text, urls or file parts", name)
	}
}

func (s *Server) readFilePart(part *multipart.Part, msg *actors.Deliver) error {
	l := s.cfg.Limits
	if len(msg.Files) == l.MaxFiles {
		return fmt.Errorf("%w: more than %d files in one delivery (--max-files)",
			actors.ErrTooLarge, l.MaxFiles)
	}
	name := rawFileName(part)
	if err := checkFileName(name); err != nil {
		return err
	}
	for _, f := range msg.Files {
		if f.Name == name {
			return invalid("file name %q appears twice in the delivery", name)
		}
	}

	data, err := readLimited(part, l.MaxFileBytes, "--max-file-bytes")
	if err != nil {
		return fmt.Errorf("file %q: %w", name, err)
	}
	sum := sha256.Sum256(data)
	msg.Files = append(msg.Files, actors.File{
		FileMeta: actors.FileMeta{Name: name, Size: int64(len(data)), SHA256: hex.EncodeToString(sum[:])},
		Data:     data,
	})
	return nil
}

// rawFileName is a part's file name as the client sent it. Part.FileName strips any directory,
// which would silently turn "../x" or "a/b" into another name; heeprd refuses those instead.
func rawFileName(part *multipart.Part) string {
	_, params, err := mime.ParseMediaType(part.Header.Get("Content-Disposition"))
	if err != nil {
		return part.FileName()
	}
	return params["filename"]
}

// readLimited reads a part whole, refusing one longer than the limit set by flag.
func readLimited(r io.Reader, limit int64, flag string) ([]byte, error) {
	data, err := io.ReadAll(io.LimitReader(r, limit+1))
	if err != nil {
		return nil, invalid("broken multipart body: %v", err)
	}
	if int64(len(data)) > limit {
		return nil, tooLarge("the part ("+flag+")", limit)
	}
	return data, nil
}

// checkFileName accepts plain file names only: they become part of storage keys and of URLs.
func checkFileName(name string) error {
	switch {
	case name == "":
		return invalid("a file part needs a file name")
	case len(name) > 255:
		return invalid("file name longer than 255 bytes")
	case !utf8.ValidString(name), strings.ContainsAny(name, "/\\\x00"),
		name == ".", name == "..", strings.TrimSpace(name) != name:
		return invalid("file name %q must be a plain name without path separators", name)
	}
	for _, r := range name {
		if r < 0x20 || r == 0x7f {
			return invalid("file name %q contains a control character", name)
		}
	}
	return nil
}
