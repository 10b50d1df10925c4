package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
)

// observation is what the restarted server shows, read through the admin API and by polling
// with every key the ledger knows. The verifier compares it with the ledger.
type observation struct {
	Agents map[string]*obsAgent // by agent id; absent: not read
	Orders map[string]*obsOrder // by order id; absent: not read
	Files  map[fileRef]*obsFile // downloaded files
	Keys   map[string]*obsKey   // by API key: the answer to GET /events with it
	Errors []string             // reads that failed for a reason other than 404
}

// obsAgent is GET /admin/agents/{id}. Found is false after a 404.
type obsAgent struct {
	Found       bool
	Status      string
	KeyState    string
	Manual      bool
	RevisionCap int
	OrderCount  int // orders in any state
}

// obsOrder is GET /admin/orders/{id}. Found is false after a 404.
type obsOrder struct {
	Found         bool
	State         string
	FlaggedFrom   string
	RevisionsUsed int
	Progress      *int
	Deliveries    []obsDelivery
	Terms         orderTerms
}

// obsDelivery is one delivery of an order as the admin API shows it.
type obsDelivery struct {
	N     int
	Text  string
	URLs  []string
	Files []obsFileMeta
}

// obsFileMeta is a delivered file's metadata as the admin API shows it.
type obsFileMeta struct {
	Name   string
	Size   int64
	SHA256 string
}

// fileRef names one delivered file.
type fileRef struct {
	Order string
	N     int
	Name  string
}

// obsFile is one file downloaded from the admin API. Found is false after a 404.
type obsFile struct {
	Found     bool
	Data      []byte
	HeaderSHA string // X-Content-SHA256
}

// obsKey is the answer to GET /events with one key: authOK with the events it returned, or the
// 401 code.
type obsKey struct {
	Agent  string
	Code   string
	Events []seenEvent
}

// violation is one way the restarted server disagrees with the ledger.
type violation struct {
	Check  string `json:"check"`
	Agent  string `json:"agent,omitempty"`
	Order  string `json:"order,omitempty"`
	Seq    int64  `json:"seq,omitempty"`
	Detail string `json:"detail"`
}

// verdict is the result of a verification: what was checked and what disagreed.
type verdict struct {
	Acked   map[opKind]int `json:"acked"`             // acknowledged writes, all checked
	InDoubt map[opKind]int `json:"in_doubt"`          // writes whose outcome stayed unknown
	Retried map[opKind]int `json:"resolved_by_retry"` // outcome known after a broken attempt
	Refused map[opKind]int `json:"refused"`

	Agents     int         `json:"agents_checked"`
	Orders     int         `json:"orders_checked"`
	Deliveries int         `json:"deliveries_checked"`
	Files      int         `json:"files_checked"`
	FileBytes  int64       `json:"file_bytes_compared"`
	Keys       int         `json:"keys_checked"`
	Events     eventTally  `json:"events"`
	Violations []violation `json:"violations"`
}

// eventTally counts the event checks. Expected counts the events acknowledged writes must have
// queued, Seen the distinct event ids polls returned, Missing the expected ones never seen.
// Of those, ExplainedPoll were queued before a poll in doubt (heeprd drains what a poll
// answered, even if the answer never arrived) and Unverifiable after the agent's last poll,
// with no poll at the end. DuplicateSeen counts ids returned by more than one poll.
type eventTally struct {
	Expected       int            `json:"expected"`
	Seen           int            `json:"seen"`
	Missing        int            `json:"missing"`
	ExplainedPoll  int            `json:"explained_by_poll"`
	Unverifiable   int            `json:"unverifiable"`
	UnknownOrders  int            `json:"for_orders_in_doubt"`
	DuplicateSeen  int            `json:"returned_again"`
	ExpectedByKind map[string]int `json:"expected_by_kind"`
}

// eventSlot groups the events of one kind for one order.
type eventSlot struct{ Order, Kind string }

// eventExpect counts the writes that queue events into a slot: sure ones (acknowledged, with an
// unambiguous transition) and possible ones (in doubt, or ambiguous).
type eventExpect struct {
	Agent             string
	Sure              int
	Maybe             int
	FirstSeq, LastSeq int64
}

// orderTrack is the verifier's state for one acknowledged order.
type orderTrack struct {
	id, agent   string
	revisionCap int
	set         []orderModel
	terms       map[int64]orderTerms // by the Seq that set them; 0: the placement
	acked       []*entry             // acknowledged deliveries
	doubtful    []*entry             // deliveries in doubt
}

// agentTrack is the verifier's state for one acknowledged agent.
type agentTrack struct {
	id            string
	manual        bool
	revisionCap   int
	set           []agentModel
	placed        int      // acknowledged placements
	placedInDoubt int      // placements in doubt
	keys          []string // keys issued by acknowledged registrations, oldest first
	doubtPolls    []int64  // Seq of polls in doubt
	lastPoll      int64    // Seq of the last acknowledged poll
	finalPolled   bool     // a poll after the final restart returned the agent's queue
}

// verifier replays a ledger against an observation.
type verifier struct {
	v      *verdict
	obs    *observation
	agents map[string]*agentTrack
	order  []string // agent ids in creation order
	orders map[string]*orderTrack
	olist  []string // order ids in placement order
	expect map[eventSlot]*eventExpect
	seen   map[string]seenEvent // by event id
	seenBy map[string]string    // event id → agent whose poll returned it
}

// verify replays entries (in order of issue) through the state machine and compares the result
// with obs. Every acknowledged write must be visible, unless a later write explains the
// difference.
func verify(entries []*entry, obs *observation) *verdict {
	vf := &verifier{
		v: &verdict{Acked: map[opKind]int{}, InDoubt: map[opKind]int{}, Retried: map[opKind]int{},
			Refused: map[opKind]int{}, Events: eventTally{ExpectedByKind: map[string]int{}}},
		obs: obs, agents: map[string]*agentTrack{}, orders: map[string]*orderTrack{},
		expect: map[eventSlot]*eventExpect{}, seen: map[string]seenEvent{},
		seenBy: map[string]string{},
	}
	for _, msg := range obs.Errors {
		vf.fail("read", "", "", 0, "%s", msg)
	}
	for _, e := range entries {
		vf.tally(e)
		vf.replay(e)
	}
	for _, id := range vf.order {
		vf.checkAgent(vf.agents[id])
	}
	for _, id := range vf.olist {
		vf.checkOrder(vf.orders[id])
	}
	vf.collectFinalEvents()
	vf.checkEvents()
	return vf.v
}

func (vf *verifier) fail(check, agent, order string, seq int64, format string, args ...any) {
	vf.v.Violations = append(vf.v.Violations, violation{Check: check, Agent: agent, Order: order,
		Seq: seq, Detail: fmt.Sprintf(format, args...)})
}

func (vf *verifier) tally(e *entry) {
	switch e.Outcome {
	case outAcked:
		vf.v.Acked[e.Kind]++
	case outInDoubt:
		vf.v.InDoubt[e.Kind]++
	case outRefused:
		vf.v.Refused[e.Kind]++
	}
	if e.Retried && e.Outcome != outInDoubt {
		vf.v.Retried[e.Kind]++
	}
}

// replay applies one entry to the tracks.
func (vf *verifier) replay(e *entry) {
	if e.Kind == opCreateAgent {
		vf.createAgent(e)
		return
	}
	a := vf.agents[e.Agent]
	if a == nil {
		return // an agent whose creation is not acknowledged: nothing to hold the server to
	}
	if e.Outcome == outAcked && e.Bad != "" {
		vf.fail("answer", e.Agent, e.Order, e.Seq, "%s answered 2xx, but %s", e.Kind, e.Bad)
		return
	}
	if e.Key != "" {
		vf.checkKeyUse(a, e)
	}
	switch {
	case e.Kind == opPoll:
		vf.poll(a, e)
	case e.Kind == opPlace:
		vf.place(a, e)
	case e.Kind.isOrderOp():
		if t := vf.orders[e.Order]; t != nil {
			vf.orderOp(t, e)
		}
	default:
		vf.agentOp(a, e)
	}
}

func (vf *verifier) createAgent(e *entry) {
	if e.Outcome != outAcked {
		return
	}
	a := &agentTrack{id: e.Agent, manual: e.Manual, revisionCap: e.RevisionCap,
		set: []agentModel{{Status: agentActive, Token: e.Token}}}
	vf.agents[e.Agent] = a
	vf.order = append(vf.order, e.Agent)
}

// checkKeyUse holds an agent API call's key to the key model: an accepted call means the key
// authenticated, a 401 names why it did not, and any other refusal came after the key check.
func (vf *verifier) checkKeyUse(a *agentTrack, e *entry) {
	want := ""
	switch {
	case e.Outcome == outAcked:
		want = authOK
	case e.Outcome == outRefused && isAuthCode(e.Code):
		want = e.Code
	case e.Outcome == outRefused && e.Code != "invalid_request" && !strings.HasPrefix(e.Code, "HTTP"):
		want = authOK
	default:
		return
	}
	var keep []agentModel
	var got []string
	for _, m := range a.set {
		r := m.auth(e.Key)
		got = appendUnique(got, r)
		if r == want {
			keep = append(keep, m)
		}
	}
	if len(keep) == 0 {
		vf.fail("key", a.id, e.Order, e.Seq, "%s with %s answered %s, but the acknowledged "+
			"history says the key gets %s", e.Kind, vf.keyLabel(a, e.Key), outcomeWord(e, want),
			strings.Join(got, " or "))
		return
	}
	a.set = keep
}

func outcomeWord(e *entry, want string) string {
	if want == authOK {
		return string(e.Outcome)
	}
	return want
}

// keyLabel names a key without printing it.
func (vf *verifier) keyLabel(a *agentTrack, key string) string {
	if i := slices.Index(a.keys, key); i >= 0 {
		return "key " + strconv.Itoa(i+1)
	}
	return "a key never acknowledged"
}

func (vf *verifier) poll(a *agentTrack, e *entry) {
	switch e.Outcome {
	case outInDoubt:
		a.doubtPolls = append(a.doubtPolls, e.Seq)
	case outAcked:
		a.lastPoll = e.Seq
		vf.addSeen(a.id, e.Events, e.Seq)
	}
}

// addSeen records events a poll returned; an id must always name the same event.
func (vf *verifier) addSeen(agent string, events []seenEvent, seq int64) {
	for _, ev := range events {
		old, ok := vf.seen[ev.ID]
		switch {
		case !ok:
			vf.seen[ev.ID], vf.seenBy[ev.ID] = ev, agent
		case old != ev || vf.seenBy[ev.ID] != agent:
			vf.fail("event_id", agent, ev.OrderID, seq, "event %s was returned as %s for %s "+
				"(revision %d) and later as %s for %s (revision %d)", ev.ID, old.Kind,
				old.OrderID, old.Revision, ev.Kind, ev.OrderID, ev.Revision)
		default:
			vf.v.Events.DuplicateSeen++
		}
	}
}

func (vf *verifier) place(a *agentTrack, e *entry) {
	switch e.Outcome {
	case outInDoubt:
		a.placedInDoubt++
		return
	case outRefused:
		if e.Code != codePaused {
			vf.fail("refusal", a.id, "", e.Seq, "placing an order answered %s", e.Code)
			return
		}
		vf.filterStatus(a, e, agentPaused)
		return
	}
	vf.filterStatus(a, e, agentActive)
	a.placed++
	want := stInProgress
	if a.manual {
		want = stAwaiting
	}
	if e.State != want {
		vf.fail("placement", a.id, e.Order, e.Seq, "placing an order answered state %s; an "+
			"agent with manual acceptance %v starts orders in %s", e.State, a.manual, want)
	}
	if vf.orders[e.Order] != nil {
		vf.fail("placement", a.id, e.Order, e.Seq, "a second placement answered the same "+
			"order id")
		return
	}
	t := &orderTrack{id: e.Order, agent: a.id, revisionCap: a.revisionCap,
		set:   []orderModel{{State: e.State, Progress: -1}},
		terms: map[int64]orderTerms{0: *e.Terms}}
	vf.orders[e.Order] = t
	vf.olist = append(vf.olist, e.Order)
	vf.expectEvent(a.id, e.Order, evNewOrder, e.Seq, true)
}

// filterStatus keeps the agent models whose status is want: an order was placed (active) or
// refused with agent_paused (paused).
func (vf *verifier) filterStatus(a *agentTrack, e *entry, want string) {
	var keep []agentModel
	for _, m := range a.set {
		if m.Status == want {
			keep = append(keep, m)
		}
	}
	if len(keep) == 0 {
		vf.fail("agent_status", a.id, "", e.Seq, "placing an order %s shows the agent %s, but "+
			"the acknowledged history says it is %s", e.Outcome, want, statuses(a.set))
		return
	}
	a.set = keep
}

func statuses(set []agentModel) string {
	var out []string
	for _, m := range set {
		out = appendUnique(out, m.Status)
	}
	return strings.Join(out, " or ")
}

// agentOp replays a registration, a revocation, a new bootstrap token or a status change.
func (vf *verifier) agentOp(a *agentTrack, e *entry) {
	if e.Outcome == outAcked && e.Kind == opRegister {
		a.keys = append(a.keys, e.IssuedKey)
	}
	if e.Outcome == outAcked && e.Kind == opAgentStatus && e.AnswerStatus != e.Status {
		vf.fail("answer", a.id, "", e.Seq, "status %s answered status %s", e.Status,
			e.AnswerStatus)
	}
	if e.Outcome == outRefused && isAuthCode(e.Code) {
		return // checked against the key model already; nothing changed
	}
	var next []agentModel
	var refusals []string
	for _, m := range a.set {
		n, refusal, ok := applyAgent(m, e)
		switch e.Outcome {
		case outAcked:
			if ok {
				next = addModel(next, n)
			} else {
				refusals = appendUnique(refusals, refusal)
			}
		case outInDoubt:
			next = addModel(next, m)
			if ok {
				next = addModel(next, n)
			}
		case outRefused:
			if !ok && refusal == e.Code {
				next = addModel(next, m)
			} else if ok {
				refusals = appendUnique(refusals, "success")
			} else {
				refusals = appendUnique(refusals, refusal)
			}
		}
	}
	if len(next) == 0 {
		vf.fail("agent_history", a.id, "", e.Seq, "%s %s, but the acknowledged history "+
			"predicts %s", e.Kind, describeOutcome(e), strings.Join(refusals, " or "))
		return
	}
	a.set = next
}

func describeOutcome(e *entry) string {
	if e.Outcome == outRefused {
		return "was refused with " + e.Code
	}
	return "was " + string(e.Outcome)
}

// orderOp replays one write on an acknowledged order.
func (vf *verifier) orderOp(t *orderTrack, e *entry) {
	if e.Outcome == outAcked && e.AnswerOrder != "" && e.AnswerOrder != t.id {
		vf.fail("answer", t.agent, t.id, e.Seq, "%s answered for order %s", e.Kind,
			e.AnswerOrder)
	}
	if e.Kind == opScope && e.Terms != nil {
		t.terms[e.Seq] = *e.Terms
	}
	switch e.Outcome {
	case outAcked:
		vf.orderAcked(t, e)
	case outInDoubt:
		next := slices.Clone(t.set)
		var kinds []string
		for _, m := range t.set {
			if n, ev, ok := applyOrder(m, e, t.revisionCap); ok {
				next = addModel(next, n)
				kinds = appendUnique(kinds, ev)
			}
		}
		for _, k := range kinds {
			vf.expectEvent(t.agent, t.id, k, e.Seq, false)
		}
		t.set = next
		if e.Kind.isDeliver() {
			t.doubtful = append(t.doubtful, e)
		}
	case outRefused:
		vf.orderRefused(t, e)
	}
}

func (vf *verifier) orderAcked(t *orderTrack, e *entry) {
	if e.Kind == opProgress && e.AnswerProgress != e.Progress {
		vf.fail("answer", t.agent, t.id, e.Seq, "progress %d answered progress %d", e.Progress,
			e.AnswerProgress)
	}
	var next []orderModel
	var kinds []string
	for _, m := range t.set {
		n, ev, ok := applyOrder(m, e, t.revisionCap)
		if !ok || n.State != e.State || (e.Kind.isDeliver() && n.Deliveries != e.DeliveryN) {
			continue
		}
		next = addModel(next, n)
		kinds = appendUnique(kinds, ev)
	}
	if len(next) == 0 {
		what := "state " + e.State
		if e.Kind.isDeliver() {
			what += fmt.Sprintf(", delivery %d", e.DeliveryN)
		}
		vf.fail("acked_transition", t.agent, t.id, e.Seq, "%s was acknowledged with %s, but "+
			"the acknowledged history leaves the order %s, which cannot lead there: a write "+
			"before it was lost or applied twice", e.Kind, what, describeModels(t.set))
		next = []orderModel{forceOrder(t.set[0], e)}
		kinds = nil
	}
	switch {
	case len(kinds) == 1 && kinds[0] != "":
		vf.expectEvent(t.agent, t.id, kinds[0], e.Seq, true)
	default:
		for _, k := range kinds {
			vf.expectEvent(t.agent, t.id, k, e.Seq, false)
		}
	}
	t.set = next
	if e.Kind.isDeliver() {
		t.acked = append(t.acked, e)
	}
}

// forceOrder makes the model agree with an acknowledged answer that the history cannot
// explain, so that one lost write is reported once rather than at every later write.
func forceOrder(m orderModel, e *entry) orderModel {
	m.State = e.State
	switch {
	case e.Kind.isDeliver():
		m.Deliveries, m.Progress = e.DeliveryN, -1
	case e.Kind == opProgress:
		m.Progress = e.Progress
	case e.Kind == opScope:
		m.TermsSeq = e.Seq
	}
	if m.State != stFlagged {
		m.FlaggedFrom = ""
	}
	return m
}

func (vf *verifier) orderRefused(t *orderTrack, e *entry) {
	switch {
	case isAuthCode(e.Code):
		return // the key model has checked it; the order is unchanged
	case e.Code == codeNotFound:
		vf.fail("order_lost", t.agent, t.id, e.Seq, "%s on an acknowledged order answered 404 "+
			"not_found", e.Kind)
		return
	case e.Code != codeInvalid:
		vf.fail("refusal", t.agent, t.id, e.Seq, "%s was refused with %s", e.Kind, e.Code)
		return
	}
	var keep []orderModel
	for _, m := range t.set {
		if _, _, ok := applyOrder(m, e, t.revisionCap); !ok {
			keep = append(keep, m)
		}
	}
	if len(keep) == 0 {
		why := ""
		if e.Retried {
			why = " (after an attempt that broke: the effect may have been kept without its " +
				"idempotency record)"
		}
		vf.fail("refusal", t.agent, t.id, e.Seq, "%s was refused with invalid_state%s, but the "+
			"acknowledged history leaves the order %s, which allows it", e.Kind, why,
			describeModels(t.set))
		return
	}
	t.set = keep
}

func (vf *verifier) expectEvent(agent, order, kind string, seq int64, sure bool) {
	if kind == "" {
		return
	}
	s := eventSlot{Order: order, Kind: kind}
	x := vf.expect[s]
	if x == nil {
		x = &eventExpect{Agent: agent, FirstSeq: seq}
		vf.expect[s] = x
	}
	x.LastSeq = seq
	if sure {
		x.Sure++
		vf.v.Events.Expected++
		vf.v.Events.ExpectedByKind[kind]++
	} else {
		x.Maybe++
	}
}

// checkAgent compares an acknowledged agent with what the server shows.
func (vf *verifier) checkAgent(a *agentTrack) {
	ob := vf.obs.Agents[a.id]
	if ob == nil {
		return
	}
	vf.v.Agents++
	if !ob.Found {
		vf.fail("agent_missing", a.id, "", 0, "the agent's creation was acknowledged, but the "+
			"server does not know it")
		return
	}
	if ob.Manual != a.manual || ob.RevisionCap != a.revisionCap {
		vf.fail("agent_settings", a.id, "", 0, "settings show manual acceptance %v and revision "+
			"cap %d; created with %v and %d", ob.Manual, ob.RevisionCap, a.manual, a.revisionCap)
	}
	var st, ks []string
	for _, m := range a.set {
		st, ks = appendUnique(st, m.Status), appendUnique(ks, m.keyState())
	}
	if !slices.Contains(st, ob.Status) {
		vf.fail("agent_status", a.id, "", 0, "status is %s; the ledger allows %s", ob.Status,
			strings.Join(st, " or "))
	}
	if !slices.Contains(ks, ob.KeyState) {
		vf.fail("key_state", a.id, "", 0, "key_state is %s; the ledger allows %s", ob.KeyState,
			strings.Join(ks, " or "))
	}
	if ob.OrderCount < a.placed || ob.OrderCount > a.placed+a.placedInDoubt {
		vf.fail("order_count", a.id, "", 0, "the agent has %d orders; %d placements were "+
			"acknowledged and %d were in doubt", ob.OrderCount, a.placed, a.placedInDoubt)
	}
	for _, key := range a.keys {
		k := vf.obs.Keys[key]
		if k == nil {
			continue
		}
		vf.v.Keys++
		var want []string
		for _, m := range a.set {
			want = appendUnique(want, m.auth(key))
		}
		if !slices.Contains(want, k.Code) {
			vf.fail("key", a.id, "", 0, "%s answers %s at the end; the ledger says %s",
				vf.keyLabel(a, key), k.Code, strings.Join(want, " or "))
		}
	}
}

// checkOrder compares an acknowledged order with what the server shows.
func (vf *verifier) checkOrder(t *orderTrack) {
	ob := vf.obs.Orders[t.id]
	if ob == nil {
		return
	}
	vf.v.Orders++
	if !ob.Found {
		vf.fail("order_missing", t.agent, t.id, 0, "the placement was acknowledged, but the "+
			"server does not know the order")
		return
	}
	matched := false
	for _, m := range t.set {
		if vf.orderMatches(t, m, ob) {
			matched = true
			break
		}
	}
	if !matched {
		vf.fail("order_state", t.agent, t.id, 0, "the server shows %s; the ledger allows only %s",
			describeObserved(t, ob), describeModels(t.set))
	}
	vf.checkDeliveries(t, ob)
}

func (vf *verifier) orderMatches(t *orderTrack, m orderModel, ob *obsOrder) bool {
	progress := -1
	if ob.Progress != nil {
		progress = *ob.Progress
	}
	return m.State == ob.State && m.RevisionsUsed == ob.RevisionsUsed &&
		m.Deliveries == len(ob.Deliveries) && m.Progress == progress &&
		(m.State != stFlagged || m.FlaggedFrom == ob.FlaggedFrom) && t.terms[m.TermsSeq] == ob.Terms
}

// checkDeliveries finds every acknowledged delivery, with its files byte for byte, and holds
// any other delivery to one in doubt.
func (vf *verifier) checkDeliveries(t *orderTrack, ob *obsOrder) {
	byN := map[int]*obsDelivery{}
	for i := range ob.Deliveries {
		byN[ob.Deliveries[i].N] = &ob.Deliveries[i]
	}
	ackedN := map[int]bool{}
	for _, e := range t.acked {
		ackedN[e.DeliveryN] = true
		d := byN[e.DeliveryN]
		if d == nil {
			vf.fail("delivery_missing", t.agent, t.id, e.Seq, "delivery %d was acknowledged, "+
				"but the order has %d deliveries", e.DeliveryN, len(ob.Deliveries))
			continue
		}
		if diff := vf.compareDelivery(t, e.Delivery, d); diff != "" {
			vf.fail("delivery_content", t.agent, t.id, e.Seq, "delivery %d: %s", d.N, diff)
		}
	}
	for i := range ob.Deliveries {
		d := &ob.Deliveries[i]
		if ackedN[d.N] {
			continue
		}
		explained := false
		for _, e := range t.doubtful {
			if vf.sameDelivery(e.Delivery, d) {
				explained = vf.compareDelivery(t, e.Delivery, d) == ""
				break
			}
		}
		if !explained {
			vf.fail("delivery_unexpected", t.agent, t.id, 0, "delivery %d matches no "+
				"acknowledged delivery and no delivery in doubt", d.N)
		}
	}
}

// sameDelivery reports whether d has sent's text, URLs and file metadata.
func (vf *verifier) sameDelivery(sent *deliveryContent, d *obsDelivery) bool {
	if sent.Text != d.Text || !slices.Equal(sent.URLs, d.URLs) || len(sent.Files) != len(d.Files) {
		return false
	}
	for i, f := range sent.Files {
		m := d.Files[i]
		if m.Name != f.Name || m.Size != int64(len(f.Data)) || m.SHA256 != f.SHA256 {
			return false
		}
	}
	return true
}

// compareDelivery checks d against what was sent, downloading-side included, and returns what
// differs ("" if nothing).
func (vf *verifier) compareDelivery(t *orderTrack, sent *deliveryContent, d *obsDelivery) string {
	vf.v.Deliveries++
	if !vf.sameDelivery(sent, d) {
		return fmt.Sprintf("shows text %q, urls %v and %d files; sent text %q, urls %v and %d "+
			"files", clip(d.Text), d.URLs, len(d.Files), clip(sent.Text), sent.URLs,
			len(sent.Files))
	}
	var diffs []string
	for _, f := range sent.Files {
		got := vf.obs.Files[fileRef{Order: t.id, N: d.N, Name: f.Name}]
		if got == nil {
			continue
		}
		vf.v.Files++
		sum := sha256.Sum256(got.Data)
		switch {
		case !got.Found:
			diffs = append(diffs, fmt.Sprintf("file %s is listed but answers 404", f.Name))
		case !bytes.Equal(got.Data, f.Data):
			diffs = append(diffs, fmt.Sprintf("file %s: downloaded %d bytes (sha256 %s), sent "+
				"%d (sha256 %s)", f.Name, len(got.Data), hex.EncodeToString(sum[:]),
				len(f.Data), f.SHA256))
		case got.HeaderSHA != f.SHA256:
			diffs = append(diffs, fmt.Sprintf("file %s: X-Content-SHA256 %q, want %s", f.Name,
				got.HeaderSHA, f.SHA256))
		default:
			vf.v.FileBytes += int64(len(got.Data))
		}
	}
	return strings.Join(diffs, "; ")
}

// collectFinalEvents adds the events of the last polls, made after the final restart.
func (vf *verifier) collectFinalEvents() {
	keys := make([]string, 0, len(vf.obs.Keys))
	for k := range vf.obs.Keys {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if k := vf.obs.Keys[k]; k.Code == authOK {
			vf.addSeen(k.Agent, k.Events, 0)
			if a := vf.agents[k.Agent]; a != nil {
				a.finalPolled = true
			}
		}
	}
}

// checkEvents holds every event an acknowledged write queued to a poll that returned it, and
// every event returned to a write that could have queued it.
func (vf *verifier) checkEvents() {
	seen := map[eventSlot]int{}
	unknown := map[string]map[string]bool{} // agent → orders of new_order events for no known order
	for id, ev := range vf.seen {
		vf.v.Events.Seen++
		agent := vf.seenBy[id]
		if vf.orders[ev.OrderID] == nil {
			if ev.Kind != evNewOrder {
				vf.fail("event_unknown_order", agent, ev.OrderID, 0, "event %s (%s) is about "+
					"an order no acknowledged placement made", id, ev.Kind)
				continue
			}
			if unknown[agent] == nil {
				unknown[agent] = map[string]bool{}
			}
			unknown[agent][ev.OrderID] = true
			continue
		}
		seen[eventSlot{Order: ev.OrderID, Kind: ev.Kind}]++
	}
	for _, agent := range sortedKeys(unknown) {
		n := len(unknown[agent])
		vf.v.Events.UnknownOrders += n
		if a := vf.agents[agent]; a == nil || n > a.placedInDoubt {
			doubt := 0
			if a != nil {
				doubt = a.placedInDoubt
			}
			vf.fail("event_unknown_order", agent, "", 0, "new_order events for %d orders no "+
				"acknowledged placement made, but only %d placements were in doubt", n, doubt)
		}
	}

	slots := make([]eventSlot, 0, len(vf.expect)+len(seen))
	for s := range vf.expect {
		slots = append(slots, s)
	}
	for s := range seen {
		if vf.expect[s] == nil {
			slots = append(slots, s)
		}
	}
	slices.SortFunc(slots, func(a, b eventSlot) int {
		return strings.Compare(a.Order+" "+a.Kind, b.Order+" "+b.Kind)
	})
	for _, s := range slots {
		x, n := vf.expect[s], seen[s]
		if x == nil {
			x = &eventExpect{Agent: vf.orders[s.Order].agent}
		}
		switch {
		case n < x.Sure:
			missing := x.Sure - n
			vf.v.Events.Missing += missing
			if vf.doubtPollAfter(x.Agent, x.FirstSeq) {
				vf.v.Events.ExplainedPoll += missing
				continue
			}
			if a := vf.agents[x.Agent]; a != nil && !a.finalPolled && a.lastPoll < x.LastSeq {
				vf.v.Events.Unverifiable += missing
				continue
			}
			vf.fail("event_lost", x.Agent, s.Order, x.FirstSeq, "%d %s events were queued by "+
				"acknowledged writes; polls returned %d, and no poll was in doubt after them",
				x.Sure, s.Kind, n)
		case n > x.Sure+x.Maybe:
			vf.fail("event_extra", x.Agent, s.Order, x.FirstSeq, "polls returned %d distinct "+
				"%s events; the ledger has %d writes that queue one, %d of them in doubt",
				n, s.Kind, x.Sure+x.Maybe, x.Maybe)
		}
	}
}

// doubtPollAfter reports whether the agent had a poll in doubt after the write at seq: heeprd
// may have drained the events that poll never delivered.
func (vf *verifier) doubtPollAfter(agent string, seq int64) bool {
	a := vf.agents[agent]
	if a == nil {
		return false
	}
	for _, p := range a.doubtPolls {
		if p > seq {
			return true
		}
	}
	return false
}

func describeModels(set []orderModel) string {
	var parts []string
	for i, m := range set {
		if i == 4 {
			parts = append(parts, fmt.Sprintf("(%d more)", len(set)-i))
			break
		}
		parts = append(parts, describeModel(m))
	}
	return strings.Join(parts, " or ")
}

func describeModel(m orderModel) string {
	s := m.State
	if m.State == stFlagged {
		s += " from " + m.FlaggedFrom
	}
	s += fmt.Sprintf(" (revisions %d, deliveries %d, progress %s, terms of write %d)",
		m.RevisionsUsed, m.Deliveries, progressWord(m.Progress), m.TermsSeq)
	return s
}

func describeObserved(t *orderTrack, ob *obsOrder) string {
	progress := -1
	if ob.Progress != nil {
		progress = *ob.Progress
	}
	s := ob.State
	if ob.State == stFlagged {
		s += " from " + ob.FlaggedFrom
	}
	termsFrom := "no write"
	for seq, terms := range t.terms {
		if terms == ob.Terms {
			termsFrom = "write " + strconv.FormatInt(seq, 10)
		}
	}
	return s + fmt.Sprintf(" (revisions %d, deliveries %d, progress %s, terms of %s)",
		ob.RevisionsUsed, len(ob.Deliveries), progressWord(progress), termsFrom)
}

func progressWord(p int) string {
	if p < 0 {
		return "none"
	}
	return strconv.Itoa(p)
}

func clip(s string) string {
	if len(s) > 40 {
		return s[:40] + "…"
	}
	return s
}

func appendUnique[T comparable](list []T, v T) []T {
	if slices.Contains(list, v) {
		return list
	}
	return append(list, v)
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
