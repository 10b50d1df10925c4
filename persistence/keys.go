package persistence

import (
	"fmt"
	"strconv"
	"strings"
)

// Key layout. Every record of an agent sits under a prefix that names the record kind and then
// the agent id, so one agent's orders or events can be read with a prefix scan, and a kind can be
// restored in one pass:
//
//	a/<agent id>                       the agent's own record (actors.AgentState, agentcodec.go)
//	l/agt_<c>/<sequence, 16 hex>       poll times of agents whose id starts with c (polllog.go)
//	h/<agent id>                       its last poll time, in the layout before the poll log
//	o/<agent id>/<order id>            one order
//	p/<agent id>/<order id>            the order's latest progress, if newer than its o/ record
//	e/<agent id>/<event seq, 16 hex>   one queued event, in queue order
//	s/<agent id>/<file name>           an owner's replacement for a skill file
//	i/<agent id>/<idempotency key>     the first answer to an idempotent request
//	f/<order id>/<delivery, 8 hex>/<file name>   the bytes of a delivered file
//	m/schema                           the layout version
const (
	prefixAgent     = "a/"
	prefixHeartbeat = "h/"
	prefixOrder     = "o/"
	prefixProgress  = "p/"
	prefixEvent     = "e/"
	prefixSkill     = "s/"
	prefixRemember  = "i/"
	prefixFile      = "f/"
	keySchema       = "m/schema"
)

func agentKey(id string) []byte { return []byte(prefixAgent + id) }

func orderKey(agentID, orderID string) []byte {
	return []byte(prefixOrder + agentID + "/" + orderID)
}

func progressKey(agentID, orderID string) []byte {
	return []byte(prefixProgress + agentID + "/" + orderID)
}

func eventKey(agentID string, seq uint64) []byte {
	return fmt.Appendf(nil, "%s%s/%016x", prefixEvent, agentID, seq)
}

func rememberKey(agentID, key string) []byte {
	return []byte(prefixRemember + agentID + "/" + key)
}

func skillKey(agentID, file string) []byte { return []byte(prefixSkill + agentID + "/" + file) }

func fileKey(orderID string, delivery int, name string) []byte {
	return fmt.Appendf(nil, "%s%s/%08x/%s", prefixFile, orderID, delivery, name)
}

// splitAgentKey returns the agent id and the rest of a key under prefix ("" for a/ and h/).
func splitAgentKey(key, prefix string) (agentID, rest string, err error) {
	body, ok := strings.CutPrefix(key, prefix)
	if !ok || body == "" {
		return "", "", fmt.Errorf("key %q: %w: not under %q", key, ErrCorrupt, prefix)
	}
	agentID, rest, _ = strings.Cut(body, "/")
	return agentID, rest, nil
}

func parseEventSeq(key, rest string) (uint64, error) {
	seq, err := strconv.ParseUint(rest, 16, 64)
	if err != nil || len(rest) != 16 {
		return 0, fmt.Errorf("key %q: %w: bad event sequence", key, ErrCorrupt)
	}
	return seq, nil
}
