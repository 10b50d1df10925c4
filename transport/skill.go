package transport

import (
	"bytes"
	"fmt"

	"github.com/valyala/fasthttp"

	"github.com/heepr/heeprd/actors"
	"github.com/heepr/heeprd/actors/skill"
)

// render builds an agent's skill package from what its actor returned. Rendering runs here, on
// the request's goroutine, so the actor is not held up by it.
func (s *Server) render(src *actors.SkillSource) (*skill.Package, error) {
	pkg, err := skill.Render(s.skillParams(src), src.Overrides)
	if err != nil {
		return nil, fmt.Errorf("%w: render skill package of %s: %w", actors.ErrInternal,
			src.AgentID, err)
	}
	return pkg, nil
}

func (s *Server) skillParams(src *actors.SkillSource) skill.Params {
	return skill.Params{
		AgentID: src.AgentID, AgentName: src.Name, PollMinutes: src.PollMinutes,
		BaseURL: s.cfg.BaseURL, Limits: s.cfg.Limits, Budget: s.cfg.AgentBudget,
	}
}

// renderFile renders one of an agent's skill files from what its actor returned. Rendering
// runs here, on the request's goroutine, so the actor is not held up by it.
func (s *Server) renderFile(src *actors.SkillSource, name string) ([]byte, string, bool, error) {
	content, hash, ok, err := skill.RenderFile(s.skillParams(src), src.Overrides, name)
	if err != nil {
		return nil, "", false, fmt.Errorf("%w: render skill file of %s: %w", actors.ErrInternal,
			src.AgentID, err)
	}
	return content, hash, ok, nil
}

// Rules renders an agent's RULES.md, for the "sf" field of work events.
func (s *Server) Rules(src actors.SkillSource) string {
	content, _, _, err := s.renderFile(&src, skill.RulesFile)
	if err != nil {
		s.log.Error("render rules", "agent_id", src.AgentID, "err", err)
		return ""
	}
	return string(content)
}

// agentSkillFile authenticates the request's key and renders one file of its agent's skill
// package; ok is false for an unknown file name.
func (s *Server) agentSkillFile(ctx *fasthttp.RequestCtx, name string) (agentID string,
	content []byte, hash string, ok bool, err error) {
	agentID, key, err := bearer(ctx)
	if err != nil {
		return "", nil, "", false, err
	}
	v, err := s.askAgent(agentID, &actors.GetSkill{Key: key})
	if err != nil {
		return "", nil, "", false, err
	}
	content, hash, ok, err = s.renderFile(v.(*actors.SkillSource), name)
	return agentID, content, hash, ok, err
}

type skillReply struct {
	AgentID     string `json:"agent_id"`
	File        string `json:"file"`
	Content     string `json:"content"`
	ContentHash string `json:"content_hash"`
}

// skill answers GET /skill with SKILL.md and its hash; a matching If-None-Match gets 304.
func (s *Server) skill(ctx *fasthttp.RequestCtx) error {
	agentID, content, hash, _, err := s.agentSkillFile(ctx, skill.SkillFile)
	if err != nil {
		return err
	}

	if notModified(ctx, hash) {
		return nil
	}
	return writeJSON(ctx, fasthttp.StatusOK, skillReply{
		AgentID: agentID, File: skill.SkillFile, Content: string(content), ContentHash: hash,
	})
}

// skillFile answers GET /agents/{id}/skill/{file} with the raw file. The key is checked first,
// so a stranger learns nothing from the status.
func (s *Server) skillFile(ctx *fasthttp.RequestCtx) error {
	name := pathParam(ctx, "file")
	agentID, content, hash, ok, err := s.agentSkillFile(ctx, name)
	if err != nil {
		return err
	}
	if pathParam(ctx, "id") != agentID {
		return fmt.Errorf("%w: a key may read only its own agent's skill files", actors.ErrForbidden)
	}
	if !ok {
		return notFound("no skill file %q; the files are %v", name, skill.Files)
	}

	if notModified(ctx, hash) {
		return nil
	}
	ctx.Response.Header.SetContentType(skill.ContentType(name))
	ctx.SetBody(content)
	return nil
}

// notModified sets the ETag of a file with the hash, and answers 304 if the client already has
// that version (If-None-Match).
func notModified(ctx *fasthttp.RequestCtx, hash string) bool {
	ctx.Response.Header.Set(fasthttp.HeaderETag, `"`+hash+`"`)
	if !etagMatches(ctx.Request.Header.Peek(fasthttp.HeaderIfNoneMatch), hash) {
		return false
	}
	ctx.SetStatusCode(fasthttp.StatusNotModified)
	return true
}

// etagMatches reports whether an If-None-Match header names hash, quoted or not, alone or in a
// list, or is "*".
func etagMatches(header []byte, hash string) bool {
	for _, tag := range bytes.Split(header, []byte{','}) {
		tag = bytes.TrimSpace(tag)
		tag = bytes.TrimPrefix(tag, []byte("W/"))
		tag = bytes.Trim(tag, `"`)
		if string(tag) == hash || string(tag) == "*" {
			return true
		}
	}
	return false
}
