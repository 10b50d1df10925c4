package main

import (
	"slices"
	"sync"
	"sync/atomic"

	"github.com/heepr/heeprd/actors"
)

// The crash ledger: every write the crash mode sends, with what it sent and what it learnt.
//
// A write is recorded once its outcome is known: acked (a 2xx answer arrived), refused (a
// definite error answer: nothing was done) or in doubt (the attempt broke, or the server
// answered 5xx, so it may or may not have taken effect). Writes that never reached the server
// (the connection was refused while heeprd was down) are not recorded at all. The verifier
// (verify.go) replays the ledger through a model of heeprd's state machine and compares the
// result with what the restarted server shows.

// opKind names one kind of write in the ledger. Polls are in the ledger too: they drain events.
type opKind string

// Ledger kinds: the admin API's writes, the agent API's writes and polls.
const (
	opCreateAgent   opKind = "create_agent"
	opRegister      opKind = "register"
	opMintBootstrap opKind = "mint_bootstrap"
	opRevokeKey     opKind = "revoke_key"
	opAgentStatus   opKind = "status"
	opPlace         opKind = "place"
	opPoll          opKind = "poll"
	opDeliverJSON   opKind = "deliver_json"
	opDeliverFiles  opKind = "deliver_multipart"
	opDecline       opKind = "decline"
	opFlag          opKind = "flag"
	opProgress      opKind = "progress"
	opRelease       opKind = "release"
	opRefund        opKind = "refund"
	opApprove       opKind = "approve"
	opDeny          opKind = "deny"
	opRevision      opKind = "revision"
	opScope         opKind = "scope"
	opUnflag        opKind = "unflag"
)

// isOrderOp reports whether the kind acts on one existing order.
func (k opKind) isOrderOp() bool {
	switch k {
	case opDeliverJSON, opDeliverFiles, opDecline, opFlag, opProgress, opRelease, opRefund,
		opApprove, opDeny, opRevision, opScope, opUnflag:
		return true
	}
	return false
}

// isDeliver reports whether the kind is a delivery, in either form.
func (k opKind) isDeliver() bool { return k == opDeliverJSON || k == opDeliverFiles }

// outcome is what became of one write.
type outcome string

const (
	outAcked   outcome = "acked"    // a 2xx answer arrived
	outRefused outcome = "refused"  // a 4xx answer: nothing was done
	outInDoubt outcome = "in_doubt" // no answer, or 5xx: it may or may not have taken effect
)

// Order states, as heeprd names them (README, "Orders and events").
const (
	stAwaiting       = "awaiting_approval"
	stInProgress     = "in_progress"
	stDelivered      = "delivered"
	stRevisionReview = "revision_review"
	stReleased       = "released"
	stDeclined       = "declined"
	stDenied         = "denied"
	stFlagged        = "flagged"
	stRefunded       = "refunded"
)

// Event kinds, as heeprd names them.
const (
	evNewOrder      = "new_order"
	evApproved      = "owner_approved_order"
	evDenied        = "owner_denied_order"
	evRevision      = "revision_request"
	evScopeChange   = "scope_change"
	agentActive     = "active"
	agentPaused     = "paused"
	authOK          = "ok" // the key authenticates
	codeKeyRevoked  = "key_revoked"
	codeKeyUnknown  = "key_unknown"
	codeInvalid     = "invalid_state"
	codePaused      = "agent_paused"
	codeNotFound    = "not_found"
	codeBootUnknown = "bootstrap_unknown"
	codeBootUsed    = "bootstrap_used"
	codeActiveKey   = "active_key_exists"
)

// isAuthCode reports whether an error code says the API key was not accepted.
func isAuthCode(code string) bool {
	switch code {
	case "missing_credentials", codeKeyUnknown, codeKeyRevoked, "key_expired":
		return true
	}
	return false
}

// finalState reports whether no action moves an order out of state s.
func finalState(s string) bool {
	return s == stReleased || s == stDeclined || s == stDenied || s == stRefunded
}

// openState reports whether s is one of the four open states.
func openState(s string) bool {
	return s == stAwaiting || s == stInProgress || s == stDelivered || s == stRevisionReview
}

// orderTerms are the terms a placement or a scope change set. Deadline is RFC 3339 in UTC.
type orderTerms struct {
	Scope    string `json:"scope"`
	Brief    string `json:"brief"`
	Deadline string `json:"deadline"`
}

// deliveredFile is one file the harness sent in a delivery.
type deliveredFile struct {
	Name   string
	Data   []byte
	SHA256 string // lowercase hex of Data
}

// deliveryContent is what one delivery sent.
type deliveryContent struct {
	Text  string
	URLs  []string
	Files []deliveredFile
}

// seenEvent is an event as a poll returned it.
type seenEvent struct {
	ID       string `json:"id"`
	Kind     string `json:"kind"`
	OrderID  string `json:"order_id"`
	Revision int    `json:"revision,omitempty"`
}

// entry is one write in the ledger. Only the fields of its kind are set.
type entry struct {
	Seq     int64 // order of issue; one worker owns an agent, so an agent's writes are sequential
	Kind    opKind
	Agent   string
	Order   string // the order acted on; for a placement, the id the answer gave
	Outcome outcome
	Code    string // refused: the error envelope's code, or "HTTP <status>" without one
	Retried bool   // an earlier attempt broke before the outcome was known
	Key     string // the API key an agent API call carried

	// What was sent.
	Token       string // register: the bootstrap token used; create, mint: the token issued
	Status      string // status: active or paused
	Progress    int    // progress: the percentage
	Manual      bool   // create: manual acceptance
	RevisionCap int    // create: the revision cap
	Terms       *orderTerms
	Delivery    *deliveryContent

	// What the answer said (acked only).
	State          string // the order state answered
	AnswerOrder    string // the order id answered
	DeliveryN      int    // deliver: the delivery number answered
	IssuedKey      string // register: the API key issued
	AnswerStatus   string // status, progress: the agent status answered
	AnswerProgress int    // progress: the percentage answered
	Events         []seenEvent
	Bad            string // a 2xx answer the harness could not read
}

// ledger collects entries from every worker. Safe for concurrent use.
type ledger struct {
	seq     atomic.Int64
	mu      sync.Mutex
	entries []*entry
}

// begin starts an entry with the next sequence number; the caller fills it in and adds it once
// its outcome is known.
func (l *ledger) begin(kind opKind, agent, order string) *entry {
	return &entry{Seq: l.seq.Add(1), Kind: kind, Agent: agent, Order: order}
}

// add records an entry whose outcome is known.
func (l *ledger) add(e *entry) {
	l.mu.Lock()
	l.entries = append(l.entries, e)
	l.mu.Unlock()
}

// sorted returns the entries in order of issue.
func (l *ledger) sorted() []*entry {
	l.mu.Lock()
	out := slices.Clone(l.entries)
	l.mu.Unlock()
	slices.SortFunc(out, func(a, b *entry) int { return int(a.Seq - b.Seq) })
	return out
}

// count returns how many entries have the outcome.
func (l *ledger) count(o outcome) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, e := range l.entries {
		if e.Outcome == o {
			n++
		}
	}
	return n
}

// orderModel is what the ledger can tell of one order: the fields heeprd's state machine reads
// or the verifier compares. It is comparable, so sets of models deduplicate.
type orderModel struct {
	State         string
	FlaggedFrom   string
	RevisionsUsed int
	Deliveries    int
	Progress      int   // -1: none since placement or the last delivery
	TermsSeq      int64 // Seq of the scope change whose terms hold, 0 for the placement's
}

// applyOrder performs e on m as heeprd's state machine does (README, "Orders and events").
// ok is false when e is not allowed from m's state; event is the event kind the transition
// queues for the agent, "" for none.
func applyOrder(m orderModel, e *entry, revisionCap int) (next orderModel, event string, ok bool) {
	n := m
	switch e.Kind {
	case opDeliverJSON, opDeliverFiles:
		if m.State != stInProgress {
			return m, "", false
		}
		n.State, n.Deliveries, n.Progress = stDelivered, m.Deliveries+1, -1
	case opDecline:
		if m.State != stAwaiting && m.State != stInProgress {
			return m, "", false
		}
		n.State = stDeclined
	case opFlag:
		if !openState(m.State) {
			return m, "", false
		}
		n.State, n.FlaggedFrom = stFlagged, m.State
	case opProgress:
		if m.State != stInProgress {
			return m, "", false
		}
		n.Progress = e.Progress
	case opApprove:
		switch m.State {
		case stAwaiting:
			n.State, event = stInProgress, evApproved
		case stRevisionReview:
			n.State, n.RevisionsUsed, event = stInProgress, m.RevisionsUsed+1, evRevision
		default:
			return m, "", false
		}
	case opDeny:
		switch m.State {
		case stAwaiting:
			n.State, event = stDenied, evDenied
		case stRevisionReview:
			n.State = stDelivered
		default:
			return m, "", false
		}
	case opRelease:
		if m.State != stDelivered {
			return m, "", false
		}
		n.State = stReleased
	case opRefund:
		if !openState(m.State) && m.State != stFlagged {
			return m, "", false
		}
		n.State = stRefunded
	case opRevision:
		if m.State != stDelivered {
			return m, "", false
		}
		if m.RevisionsUsed < revisionCap {
			n.State, n.RevisionsUsed, event = stInProgress, m.RevisionsUsed+1, evRevision
		} else {
			n.State = stRevisionReview
		}
	case opScope:
		if !openState(m.State) {
			return m, "", false
		}
		n.TermsSeq, event = e.Seq, evScopeChange
	case opUnflag:
		if m.State != stFlagged {
			return m, "", false
		}
		n.State, n.FlaggedFrom = m.FlaggedFrom, ""
	default:
		return m, "", false
	}
	if n.State != stFlagged {
		n.FlaggedFrom = ""
	}
	return n, event, true
}

// unknownSecret stands for a key or token that a write in doubt may have issued: the harness
// never saw it.
const unknownSecret = "?"

// agentModel is what the ledger can tell of one agent: its status, its stored key and its
// bootstrap token. Comparable, like orderModel.
type agentModel struct {
	Status    string
	StoredKey string // "" for none, unknownSecret, or the key
	Revoked   bool
	Token     string // the current bootstrap token, or unknownSecret
	TokenUsed bool
	// Replaced are the keys StoredKey replaced, newest first, as many as heeprd remembers
	// (actors.MaxPreviousKeys); "" where there is none. The harness replaces only revoked keys.
	Replaced [actors.MaxPreviousKeys]string
}

// auth is what heeprd answers to key: authOK, key_revoked or key_unknown. A key replaced by a
// later registration was revoked first and answers so while heeprd remembers it.
func (m agentModel) auth(key string) string {
	switch {
	case key == "":
		return codeKeyUnknown
	case m.StoredKey == key && m.Revoked, slices.Contains(m.Replaced[:], key):
		return codeKeyRevoked
	case m.StoredKey == key:
		return authOK
	}
	return codeKeyUnknown
}

// keyState is the key_state GET /admin/agents/{id} shows.
func (m agentModel) keyState() string {
	switch {
	case m.StoredKey == "":
		return "none"
	case m.Revoked:
		return "revoked"
	default:
		return "active"
	}
}

// applyAgent performs a key, token or status write on m. When it is not allowed, ok is false
// and refusal is the error code heeprd answers.
func applyAgent(m agentModel, e *entry) (next agentModel, refusal string, ok bool) {
	n := m
	switch e.Kind {
	case opRegister:
		switch {
		case m.Token != e.Token:
			return m, codeBootUnknown, false
		case m.TokenUsed:
			return m, codeBootUsed, false
		case m.StoredKey != "" && !m.Revoked:
			return m, codeActiveKey, false
		}
		if m.StoredKey != "" {
			copy(n.Replaced[1:], m.Replaced[:])
			n.Replaced[0] = m.StoredKey
		}
		n.StoredKey, n.Revoked, n.TokenUsed = e.IssuedKey, false, true
		if e.Outcome != outAcked {
			n.StoredKey = unknownSecret
		}
	case opRevokeKey:
		if m.StoredKey == "" || m.Revoked {
			return m, codeInvalid, false
		}
		n.Revoked = true
	case opMintBootstrap:
		n.Token, n.TokenUsed = e.Token, false
		if e.Outcome != outAcked {
			n.Token = unknownSecret
		}
	case opAgentStatus:
		n.Status = e.Status
	default:
		return m, "", false
	}
	return n, "", true
}

// modelSetLimit bounds the sets of possible models: each write in doubt may double them, each
// acknowledged write collapses them again.
const modelSetLimit = 256

// addModel adds m to set unless it is there already or the set is full.
func addModel[M comparable](set []M, m M) []M {
	if slices.Contains(set, m) || len(set) >= modelSetLimit {
		return set
	}
	return append(set, m)
}
