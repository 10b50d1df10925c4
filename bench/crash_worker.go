package main

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/valyala/fasthttp"
)

// Bounds of the crash workload.
const (
	// agentPace spaces one agent's requests, keeping it under heeprd's default budget of 20
	// requests per second per agent.
	agentPace = 60 * time.Millisecond
	// maxAttempts bounds the attempts of one write; attempts that find heeprd down wait for it.
	maxAttempts = 400
	// maxOpenOrders is how many open orders an agent keeps before it stops placing more.
	maxOpenOrders = 4
	// rotationRounds bounds the revoke, mint and register rounds of one key rotation.
	rotationRounds = 4
)

// upGate tells workers whether heeprd is up: closed channel while it is, open while the harness
// restarts it. Safe for concurrent use.
type upGate struct {
	mu  sync.Mutex
	ch  chan struct{}
	gen int64 // counts restarts, so workers drop their connections to a dead process
}

func newUpGate() *upGate {
	ch := make(chan struct{})
	close(ch)
	return &upGate{ch: ch}
}

// down marks heeprd as going away; call it before the kill.
func (g *upGate) down() {
	g.mu.Lock()
	g.ch = make(chan struct{})
	g.mu.Unlock()
}

// up marks heeprd as ready again.
func (g *upGate) up() {
	g.mu.Lock()
	close(g.ch)
	g.gen++
	g.mu.Unlock()
}

// wait blocks until heeprd is up or limit passes.
func (g *upGate) wait(limit time.Duration) {
	g.mu.Lock()
	ch := g.ch
	g.mu.Unlock()
	t := time.NewTimer(limit)
	defer t.Stop()
	select {
	case <-ch:
	case <-t.C:
	}
}

func (g *upGate) generation() int64 {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.gen
}

// crashAgent is a worker's view of one agent it owns: what the answers it got say.
type crashAgent struct {
	id, key     string
	manual      bool
	revisionCap int
	paused      bool
	keyBroken   bool // the key is revoked or unknown: rotate before the next agent API call
	endRevoked  bool // revoke the key for good in the settle phase, so a revoked key is checked
	lost        bool // the admin API answered 404 for it: the verifier reports it; leave it be
	orders      []*crashOrder
	nextAt      time.Time
}

// crashOrder is a worker's view of one open order.
type crashOrder struct {
	id, state string
	stale     bool // a write on it was refused or in doubt: read it before acting again
}

// crashWorker runs the workload for the agents it owns. An agent's requests all come from its
// worker, one at a time, so the ledger orders each agent's writes exactly.
type crashWorker struct {
	run        *crashRun
	agents     []*crashAgent
	agent, ops *endpoint
	rng        *rand.Rand
	gen        int64
}

// loop runs steps until the run stops. Each step is one logical write or poll, retried until
// its outcome is known or it is given up.
func (w *crashWorker) loop() {
	for !w.run.stopping.Load() {
		a := w.nextAgent()
		if a == nil {
			return
		}
		w.step(a)
		a.nextAt = time.Now().Add(agentPace)
	}
}

// settle leaves every agent with a known key once the workload has stopped; an agent marked
// endRevoked is polled one last time and its key revoked.
func (w *crashWorker) settle() {
	for _, a := range w.agents {
		if a.lost {
			continue
		}
		if a.keyBroken {
			w.rotate(a)
		}
		if a.endRevoked && !a.keyBroken && !a.lost {
			w.poll(a)
			w.revoke(a)
		}
	}
}

// nextAgent waits until one of the worker's agents may send again; nil once the run stops.
func (w *crashWorker) nextAgent() *crashAgent {
	var best *crashAgent
	for _, a := range w.agents {
		if !a.lost && (best == nil || a.nextAt.Before(best.nextAt)) {
			best = a
		}
	}
	if best == nil { // every agent is lost: wait for the end
		for !w.run.stopping.Load() {
			time.Sleep(20 * time.Millisecond)
		}
		return nil
	}
	for d := time.Until(best.nextAt); d > 0; d = time.Until(best.nextAt) {
		if w.run.stopping.Load() {
			return nil
		}
		time.Sleep(min(d, 20*time.Millisecond))
	}
	// A new write waits while heeprd restarts: one sent into its start-up would only be
	// refused with 503 and count as in doubt. Writes in flight at the kill are what count.
	w.run.gate.wait(time.Second)
	if g := w.run.gate.generation(); g != w.gen {
		// Connections to a killed process are dead: drop them rather than have the next
		// write break on one and count as in doubt for nothing.
		w.gen = g
		w.agent.hc.CloseIdleConnections()
		w.ops.hc.CloseIdleConnections()
	}
	return best
}

// step picks what the agent, its owner or a customer does next.
func (w *crashWorker) step(a *crashAgent) {
	if a.keyBroken {
		w.rotate(a)
		return
	}
	open := a.open()
	r := w.rng.Float64()
	switch {
	case a.paused && r < 0.35:
		w.setStatus(a, agentActive)
	case a.paused && r < 0.45:
		w.place(a) // answers agent_paused
	case r < 0.012:
		w.rotate(a)
	case r < 0.04 && !a.paused:
		w.setStatus(a, agentPaused)
	case r < 0.20:
		w.poll(a)
	case !a.paused && (len(open) == 0 || (len(open) < maxOpenOrders && r < 0.42)):
		w.place(a)
	case len(open) == 0:
		w.poll(a)
	default:
		w.act(a, open[w.rng.IntN(len(open))])
	}
}

// open returns the agent's orders that are not final, dropping the final ones.
func (a *crashAgent) open() []*crashOrder {
	a.orders = slices.DeleteFunc(a.orders, func(o *crashOrder) bool { return finalState(o.state) })
	return a.orders
}

// weighted is one choice of action with its weight.
type weighted struct {
	kind   opKind
	weight float64
}

// actionsFrom lists what may happen to an order in each state, with how often.
var actionsFrom = map[string][]weighted{
	stAwaiting: {{opApprove, 4}, {opDeny, 1}, {opDecline, 1}, {opFlag, 0.7}, {opScope, 1},
		{opRefund, 0.3}},
	stInProgress: {{opProgress, 4}, {opDeliverJSON, 2}, {opDeliverFiles, 2}, {opDecline, 0.4},
		{opFlag, 0.6}, {opScope, 0.6}, {opRefund, 0.3}},
	stDelivered: {{opRelease, 2}, {opRevision, 2.5}, {opFlag, 0.5}, {opRefund, 0.3},
		{opScope, 0.3}},
	stRevisionReview: {{opApprove, 1.5}, {opDeny, 1}, {opFlag, 0.3}, {opRefund, 0.3},
		{opScope, 0.2}},
	stFlagged: {{opUnflag, 3}, {opRefund, 1}},
}

// orderKinds lists every write on an order, for the occasional write the state forbids.
var orderKinds = []opKind{opDeliverJSON, opDeliverFiles, opDecline, opFlag, opProgress,
	opRelease, opRefund, opApprove, opDeny, opRevision, opScope, opUnflag}

// act does one thing to an open order: mostly what its state allows, now and then something it
// forbids, whose refusal the verifier checks too.
func (w *crashWorker) act(a *crashAgent, o *crashOrder) {
	if o.stale {
		w.resync(a, o)
		return
	}
	choices := actionsFrom[o.state]
	if len(choices) == 0 {
		o.stale = true
		return
	}
	kind := choices[0].kind
	if w.rng.Float64() < 0.04 {
		kind = orderKinds[w.rng.IntN(len(orderKinds))]
	} else {
		total := 0.0
		for _, c := range choices {
			total += c.weight
		}
		pick := w.rng.Float64() * total
		for _, c := range choices {
			if pick -= c.weight; pick < 0 {
				kind = c.kind
				break
			}
		}
	}
	w.orderWrite(a, o, kind)
}

// orderWrite sends one write on an order and records it.
func (w *crashWorker) orderWrite(a *crashAgent, o *crashOrder, kind opKind) {
	e := w.run.led.begin(kind, a.id, o.id)
	tag := strconv.FormatInt(e.Seq, 10)
	c, ep, idempotent, err := w.orderCall(a, o, e, tag)
	if err != nil {
		w.run.harnessError(err)
		return
	}
	ans, sent := w.send(e, ep, c, idempotent)
	if !sent {
		return
	}
	switch e.Outcome {
	case outAcked:
		w.readOrderAnswer(e, ans.body)
		if e.Bad != "" {
			o.stale = true
		} else {
			o.state = e.State
		}
	case outRefused:
		if isAuthCode(e.Code) {
			a.keyBroken = true
		} else {
			o.stale = true
		}
	case outInDoubt:
		o.stale = true
	}
	w.run.led.add(e)
}

// orderCall builds the request of a write on an order and notes in e what it sends.
func (w *crashWorker) orderCall(a *crashAgent, o *crashOrder, e *entry,
	tag string) (callSpec, *endpoint, bool, error) {
	agentCall := func(path string, body any) (callSpec, *endpoint, bool, error) {
		e.Key = a.key
		c := callSpec{method: "POST", path: path, auth: "Bearer " + a.key,
			idem: o.id + "." + string(e.Kind) + "." + tag, contentType: "application/json"}
		var err error
		c.body, err = json.Marshal(body)
		return c, w.agent, true, err
	}
	adminCall := func(action string, body any) (callSpec, *endpoint, bool, error) {
		c := callSpec{method: "POST", path: "/admin/orders/" + o.id + "/" + action,
			auth: w.run.adminAuth, contentType: "application/json"}
		var err error
		c.body, err = json.Marshal(body)
		return c, w.ops, false, err
	}
	switch e.Kind {
	case opDeliverJSON:
		e.Delivery = &deliveryContent{Text: "crash delivery " + tag + " of " + o.id,
			URLs: []string{"https://example.com/crash/" + tag}}
		return agentCall("/orders/"+o.id+"/deliver", map[string]any{"text": e.Delivery.Text,
			"urls": e.Delivery.URLs})
	case opDeliverFiles:
		e.Delivery = w.filesDelivery(o.id, tag)
		c, ep, idem, err := agentCall("/orders/"+o.id+"/deliver", nil)
		if err != nil {
			return c, ep, idem, err
		}
		c.body, c.contentType, err = multipartBody(e.Delivery)
		return c, ep, idem, err
	case opDecline:
		return agentCall("/orders/"+o.id+"/decline", map[string]string{"reason": "capacity",
			"message": "crash test decline " + tag})
	case opFlag:
		return agentCall("/orders/"+o.id+"/flag", map[string]string{"reason": "other",
			"message": "crash test flag " + tag})
	case opProgress:
		e.Progress = w.rng.IntN(101)
		return agentCall("/status", map[string]any{"order_id": o.id, "progress": e.Progress,
			"message": "crash test step " + tag})
	case opRevision:
		return adminCall("revision", map[string]string{"note": "crash test revision " + tag})
	case opScope:
		e.Terms = w.newTerms(tag, 72*time.Hour)
		return adminCall("scope", e.Terms)
	default: // release, refund, approve, deny, unflag
		return adminCall(string(e.Kind), map[string]string{"reason": "crash test " + tag})
	}
}

// filesDelivery makes a multipart delivery: text, a URL, a binary file with NUL bytes and at
// times a second, text file. The bytes are kept in the ledger for the comparison.
func (w *crashWorker) filesDelivery(orderID, tag string) *deliveryContent {
	data := make([]byte, 16+w.rng.IntN(3000))
	for i := range data {
		data[i] = byte(w.rng.UintN(256))
	}
	data[0], data[len(data)/2], data[len(data)-1] = 0, 0, 0
	d := &deliveryContent{Text: "crash files " + tag + " of " + orderID,
		URLs:  []string{"https://example.com/crash/" + tag},
		Files: []deliveredFile{newDeliveredFile("work-"+tag+".bin", data)}}
	if w.rng.IntN(3) == 0 {
		notes := []byte("notes for delivery " + tag + "\n\x00 end\n")
		d.Files = append(d.Files, newDeliveredFile("notes "+tag+".txt", notes))
	}
	return d
}

func newDeliveredFile(name string, data []byte) deliveredFile {
	sum := sha256.Sum256(data)
	return deliveredFile{Name: name, Data: data, SHA256: hex.EncodeToString(sum[:])}
}

// newTerms makes the terms of a placement or a scope change, due after ahead.
func (w *crashWorker) newTerms(tag string, ahead time.Duration) *orderTerms {
	due := time.Now().Add(ahead + time.Duration(w.rng.IntN(3600))*time.Second)
	return &orderTerms{Scope: "crash scope " + tag, Brief: "crash brief " + tag,
		Deadline: due.UTC().Truncate(time.Second).Format(time.RFC3339)}
}

// readOrderAnswer reads the answer of an acknowledged write on an order into e.
func (w *crashWorker) readOrderAnswer(e *entry, body []byte) {
	if e.Kind == opProgress {
		var out struct {
			Status string `json:"status"`
			Order  *struct {
				OrderID  string `json:"order_id"`
				Progress int    `json:"progress"`
			} `json:"order"`
		}
		if err := json.Unmarshal(body, &out); err != nil || out.Order == nil {
			e.Bad = fmt.Sprintf("its body %q has no order", clip(string(body)))
			return
		}
		// Progress is accepted only in progress and changes no state.
		e.State, e.AnswerOrder, e.AnswerProgress = stInProgress, out.Order.OrderID,
			out.Order.Progress
		e.AnswerStatus = out.Status
		return
	}
	var out struct {
		OrderID  string `json:"order_id"`
		Delivery int    `json:"delivery"`
		State    string `json:"state"`
	}
	if err := json.Unmarshal(body, &out); err != nil || out.State == "" {
		e.Bad = fmt.Sprintf("its body %q has no state", clip(string(body)))
		return
	}
	e.State, e.AnswerOrder, e.DeliveryN = out.State, out.OrderID, out.Delivery
	if e.Kind.isDeliver() && out.Delivery < 1 {
		e.Bad = "it names no delivery number"
	}
}

// resync reads an order whose last write was refused or in doubt, to act on it again.
func (w *crashWorker) resync(a *crashAgent, o *crashOrder) {
	c := callSpec{method: "GET", path: "/admin/orders/" + o.id, auth: w.run.adminAuth}
	for range 20 {
		ans := w.ops.exchange(c)
		switch {
		case ans.err == nil && ans.status == fasthttp.StatusOK:
			var out struct {
				State string `json:"state"`
			}
			if json.Unmarshal(ans.body, &out) == nil && out.State != "" {
				o.state, o.stale = out.State, false
			}
			return
		case ans.err == nil && ans.status == fasthttp.StatusNotFound:
			o.state = stRefunded // gone: stop acting on it; the verifier reports it
			return
		case ans.err != nil && notSent(ans.err):
			w.run.gate.wait(time.Second)
		case w.run.stopping.Load():
			return
		default:
			time.Sleep(20 * time.Millisecond)
		}
	}
}

// poll sends GET /events and records the events it returned.
func (w *crashWorker) poll(a *crashAgent) {
	e := w.run.led.begin(opPoll, a.id, "")
	e.Key = a.key
	ans, sent := w.send(e, w.agent, callSpec{method: "GET", path: "/events",
		auth: "Bearer " + a.key}, false)
	if !sent {
		return
	}
	switch {
	case e.Outcome == outAcked:
		var out struct {
			Events []seenEvent `json:"events"`
		}
		if err := json.Unmarshal(ans.body, &out); err != nil {
			e.Bad = fmt.Sprintf("its body %q is not JSON", clip(string(ans.body)))
		}
		e.Events = out.Events
	case e.Outcome == outRefused && isAuthCode(e.Code):
		a.keyBroken = true
	}
	w.run.led.add(e)
}

// place places an order for the agent through the admin API.
func (w *crashWorker) place(a *crashAgent) {
	e := w.run.led.begin(opPlace, a.id, "")
	tag := strconv.FormatInt(e.Seq, 10)
	e.Terms = w.newTerms(tag, 48*time.Hour)
	body, err := json.Marshal(map[string]any{"agent_id": a.id, "gig": "crash", "tier": "basic",
		"price": 10 + w.rng.IntN(90), "scope": e.Terms.Scope, "brief": e.Terms.Brief,
		"deadline": e.Terms.Deadline})
	if err != nil {
		w.run.harnessError(err)
		return
	}
	ans, sent := w.send(e, w.ops, callSpec{method: "POST", path: "/admin/orders",
		auth: w.run.adminAuth, contentType: "application/json", body: body}, false)
	if !sent {
		return
	}
	switch e.Outcome {
	case outAcked:
		var out struct {
			OrderID string `json:"order_id"`
			State   string `json:"state"`
		}
		if err := json.Unmarshal(ans.body, &out); err != nil || out.OrderID == "" {
			e.Bad = fmt.Sprintf("its body %q has no order_id", clip(string(ans.body)))
			break
		}
		e.Order, e.State, e.AnswerOrder = out.OrderID, out.State, out.OrderID
		a.orders = append(a.orders, &crashOrder{id: out.OrderID, state: out.State})
		a.paused = false
	case outRefused:
		a.paused, a.lost = e.Code == codePaused, e.Code == codeNotFound
	}
	w.run.led.add(e)
}

// setStatus sets the agent active or paused with POST /status.
func (w *crashWorker) setStatus(a *crashAgent, status string) {
	e := w.run.led.begin(opAgentStatus, a.id, "")
	e.Key, e.Status = a.key, status
	body, err := json.Marshal(map[string]string{"status": status})
	if err != nil {
		w.run.harnessError(err)
		return
	}
	ans, sent := w.send(e, w.agent, callSpec{method: "POST", path: "/status",
		auth: "Bearer " + a.key, idem: "status." + strconv.FormatInt(e.Seq, 10),
		contentType: "application/json", body: body}, true)
	if !sent {
		return
	}
	switch {
	case e.Outcome == outAcked:
		var out struct {
			Status string `json:"status"`
		}
		if err := json.Unmarshal(ans.body, &out); err != nil {
			e.Bad = fmt.Sprintf("its body %q is not JSON", clip(string(ans.body)))
		}
		e.AnswerStatus = out.Status
		a.paused = status == agentPaused
	case e.Outcome == outRefused && isAuthCode(e.Code):
		a.keyBroken = true
	case e.Outcome == outInDoubt:
		a.paused = status == agentPaused // a placement will tell
	}
	w.run.led.add(e)
}

// rotate revokes the agent's key, has a new bootstrap token minted and registers with it, the
// way an owner replaces a leaked key. A registration in doubt may have issued a key nobody
// knows, so then the round starts again with a revocation.
func (w *crashWorker) rotate(a *crashAgent) {
	a.keyBroken = true
	for range rotationRounds {
		if a.lost {
			return
		}
		if w.run.pastDeadline() || !w.revoke(a) {
			continue
		}
		token, ok := w.mint(a)
		if !ok {
			continue
		}
		if w.register(a, token) {
			a.keyBroken = false
			return
		}
	}
}

// revoke revokes the agent's key; true once it is known to be revoked (or there was none).
func (w *crashWorker) revoke(a *crashAgent) bool {
	for range 5 {
		e := w.run.led.begin(opRevokeKey, a.id, "")
		_, sent := w.send(e, w.ops, callSpec{method: "POST",
			path: "/admin/agents/" + a.id + "/revoke-key", auth: w.run.adminAuth}, false)
		if !sent {
			return false
		}
		w.run.led.add(e)
		switch {
		case e.Outcome == outAcked, e.Outcome == outRefused && e.Code == codeInvalid:
			a.keyBroken = true
			return true
		case e.Outcome == outRefused:
			a.lost = e.Code == codeNotFound
			return false
		}
	}
	return false
}

// mint has a new bootstrap token issued for the agent.
func (w *crashWorker) mint(a *crashAgent) (string, bool) {
	for range 5 {
		e := w.run.led.begin(opMintBootstrap, a.id, "")
		ans, sent := w.send(e, w.ops, callSpec{method: "POST",
			path: "/admin/agents/" + a.id + "/bootstrap", auth: w.run.adminAuth}, false)
		if !sent {
			return "", false
		}
		if e.Outcome == outAcked {
			var out struct {
				Token string `json:"bootstrap_token"`
			}
			if err := json.Unmarshal(ans.body, &out); err != nil || out.Token == "" {
				e.Bad = fmt.Sprintf("its body %q has no bootstrap_token", clip(string(ans.body)))
			}
			e.Token = out.Token
		}
		w.run.led.add(e)
		switch {
		case e.Outcome == outAcked && e.Bad == "":
			return e.Token, true
		case e.Outcome != outInDoubt:
			a.lost = e.Code == codeNotFound
			return "", false
		}
	}
	return "", false
}

// register trades token for a new API key; false if the round must start again.
func (w *crashWorker) register(a *crashAgent, token string) bool {
	for range 3 {
		e := w.run.led.begin(opRegister, a.id, "")
		e.Token = token
		ans, sent := w.send(e, w.agent, callSpec{method: "POST", path: "/agent/register",
			auth: "Bootstrap " + token}, false)
		if !sent {
			return false
		}
		if e.Outcome == outAcked {
			var out struct {
				Key string `json:"api_key"`
			}
			if err := json.Unmarshal(ans.body, &out); err != nil || out.Key == "" {
				e.Bad = fmt.Sprintf("its body %q has no api_key", clip(string(ans.body)))
			}
			e.IssuedKey = out.Key
		}
		w.run.led.add(e)
		switch {
		case e.Outcome == outAcked && e.Bad == "":
			a.key = e.IssuedKey
			return true
		case e.Outcome != outInDoubt:
			return false // bootstrap_used after a registration in doubt: revoke again
		}
	}
	return false
}

// send runs one logical write until its outcome is known. Attempts that never reached heeprd
// wait for it to be up again and are repeated; a 429 waits Retry-After. After a broken attempt
// an idempotent write is repeated under its Idempotency-Key, which makes the retry answer for
// the first attempt; any other write is then in doubt. sent is false when no attempt reached
// heeprd before the run's deadline: then nothing is recorded.
func (w *crashWorker) send(e *entry, ep *endpoint, c callSpec, idempotent bool) (answer, bool) {
	doubt := false
	var ans answer
	for range maxAttempts {
		if w.run.pastDeadline() {
			break
		}
		ans = ep.exchange(c)
		switch classify(ans) {
		case attemptAcked:
			e.Outcome, e.Retried = outAcked, doubt
			return ans, true
		case attemptRefused:
			e.Outcome, e.Code, e.Retried = outRefused, ans.codeOrStatus(), doubt
			return ans, true
		case attemptRetryLater:
			time.Sleep(min(max(ans.retryAfter, 100*time.Millisecond), 2*time.Second))
		case attemptNotSent:
			w.run.gate.wait(time.Second)
			time.Sleep(10 * time.Millisecond)
		case attemptInDoubt:
			doubt = true
			w.run.brokenAttempts.Add(1)
			if !idempotent {
				e.Outcome = outInDoubt
				return ans, true
			}
			w.run.gate.wait(time.Second)
			time.Sleep(20 * time.Millisecond)
		}
	}
	if doubt {
		e.Outcome = outInDoubt
		return ans, true
	}
	return ans, false
}
