package transport

import (
	"unicode/utf8"

	"github.com/valyala/fasthttp"

	"github.com/heepr/heeprd/actors"
	"github.com/heepr/heeprd/actors/skill"
)

type putSkillReply struct {
	AgentID     string `json:"agent_id"`
	File        string `json:"file"`
	ContentHash string `json:"content_hash"`
	IndexHash   string `json:"index_hash"`
}

// putSkill replaces one of an agent's Markdown skill files; skill.json follows by itself, since
// it is generated from the files.
func (s *Server) putSkill(ctx *fasthttp.RequestCtx) error {
	agentID, name := pathParam(ctx, "id"), pathParam(ctx, "file")
	switch {
	case name == skill.IndexFile:
		return invalid("%s is generated from the other files and cannot be replaced", name)
	case !skill.Overridable(name):
		return notFound("no skill file %q; the replaceable files are %s, %s, %s and %s", name,
			skill.SkillFile, skill.HeartbeatFile, skill.RulesFile, skill.APIFile)
	}
	content := ctx.PostBody()
	switch {
	case len(content) == 0:
		return invalid("the body is empty; send the file's new content")
	case int64(len(content)) > s.cfg.MaxSkillBytes:
		return tooLarge("the skill file (--max-skill-bytes)", s.cfg.MaxSkillBytes)
	case !utf8.Valid(content) || containsNUL(string(content)):
		return invalid("a skill file must be UTF-8 text without NUL bytes")
	}

	if _, err := s.askOwned(agentID, &actors.PutSkill{File: name, Content: string(content)}); err != nil {
		return err
	}
	v, err := s.askOwned(agentID, &actors.GetSkill{Owner: true})
	if err != nil {
		return err
	}
	pkg, err := s.render(v.(*actors.SkillSource))
	if err != nil {
		return err
	}
	_, hash, _ := pkg.File(name)
	_, index, _ := pkg.File(skill.IndexFile)
	return writeJSON(ctx, fasthttp.StatusOK,
		putSkillReply{AgentID: agentID, File: name, ContentHash: hash, IndexHash: index})
}
