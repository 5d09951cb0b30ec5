// offers.js — the inbound-call offers a presence session receives (docs/inbound.md,
// "Browser client"). The gateway offers a caller to one agent at a time over the
// agent's presence socket; the agent accepts or rejects, or the offer moves on after
// `ring_ms`. This module keeps the session's open offers and turns the frames into
// events and the accept into a promise of the room to join. Joining it is
// c2c-client.js's part (C2C.accept).
import { PresenceError } from './presence-error.js';

// An agent is offered one caller at a time; a few open offers at most means a gateway
// that lost track. The bound keeps a misbehaving peer from growing the map.
const MAX_OFFERS = 8;
const ACCEPT_TIMEOUT_MS = 10000; // how long an accept waits for `accepted`
const DEFAULT_RING_MS = 20000;
// The gateway cancels an unanswered offer after ring_ms. Its `incoming_cancelled` can be
// lost with a dropped socket, so the client drops the offer itself a little later:
// otherwise the page's card would ring forever.
const EXPIRY_SLACK_MS = 2000;

// When the offer was made: the gateway sends Unix milliseconds, events carry ISO 8601.
const iso = (ms) => (typeof ms === 'number' ? new Date(ms).toISOString() : null);

function offerDetail(o) {
  return { call_id: o.callId, callId: o.callId, from: o.from, to: o.to, lead: o.lead, ringMs: o.ringMs, at: iso(o.atMs) };
}

const gone = (callId, why) => new PresenceError('offer_gone', `no open offer for call ${callId} (${why})`);

/**
 * The open offers of one presence session.
 * `send(frame)` -> true when the frame went out on a ready socket;
 * `emit(event, detail)` the session's events;
 * `acceptOverHttp(callId)` -> Promise of the accept answer, or null when there is no
 * HTTP path (used while the socket is down).
 */
export class Offers {
  constructor({ send, emit, acceptOverHttp }) {
    this.send = send;
    this.emit = emit;
    this.acceptOverHttp = acceptOverHttp;
    // call_id -> { callId, from, to, lead, ringMs, atMs, timer, accepting }
    // `accepting`: the pending accept { promise, resolve, reject, timer, overSocket }.
    this.open = new Map();
  }

  /** Handles an offer frame; false when `f` is not one. */
  onFrame(f) {
    const id = f && typeof f.call_id === 'string' ? f.call_id : null;
    switch (f && f.type) {
      case 'incoming': if (id) this.onIncoming(id, f); return true;
      case 'incoming_update': if (id) this.onUpdate(id, f); return true;
      case 'incoming_cancelled': if (id) this.drop(id, f.reason || 'cancelled', true); return true;
      case 'accepted': if (id) this.onAccepted(id, f); return true;
      // An error naming a call answers an accept or a reject; the others answer
      // set_availability frames (presence.js).
      case 'error': if (!id) return false; this.onError(id, f); return true;
      default: return false;
    }
  }

  onIncoming(id, f) {
    const known = this.open.get(id);
    if (known) {
      // The same offer again (e.g. repeated after a resume): the page already shows
      // it; a lead it did not have yet is an update.
      this.arm(known, f.ring_ms);
      if (f.lead != null && JSON.stringify(f.lead) !== JSON.stringify(known.lead)) this.onUpdate(id, f);
      return;
    }
    if (this.open.size >= MAX_OFFERS) {
      const oldest = [...this.open.values()].find((o) => !o.accepting);
      if (oldest) this.drop(oldest.callId, 'expired', true);
      else return; // all of them being accepted: this one cannot be taken anyway
    }
    const o = {
      callId: id,
      from: typeof f.from === 'string' ? f.from : null,
      to: typeof f.to === 'string' ? f.to : null,
      lead: f.lead != null && typeof f.lead === 'object' ? f.lead : null,
      ringMs: DEFAULT_RING_MS,
      atMs: typeof f.at_ms === 'number' ? f.at_ms : null,
      timer: null,
      accepting: null,
    };
    this.open.set(id, o);
    this.arm(o, f.ring_ms);
    this.emit('incoming', offerDetail(o));
  }

  // Timed from the frame's arrival, not from at_ms: the agent's clock may be off.
  arm(o, ringMs) {
    if (Number.isFinite(ringMs) && ringMs > 0) o.ringMs = ringMs;
    clearTimeout(o.timer);
    o.timer = setTimeout(() => this.expire(o), o.ringMs + EXPIRY_SLACK_MS);
  }

  // An accept in flight has its own deadline; the offer waits for its outcome.
  expire(o) {
    if (this.open.get(o.callId) !== o) return;
    if (o.accepting) o.timer = setTimeout(() => this.expire(o), EXPIRY_SLACK_MS);
    else this.drop(o.callId, 'expired', true);
  }

  onUpdate(id, f) {
    const o = this.open.get(id);
    if (!o) return; // the offer is gone: its card is closed already
    o.lead = f.lead != null && typeof f.lead === 'object' ? f.lead : null;
    this.emit('incoming_update', { call_id: id, callId: id, lead: o.lead });
  }

  /** Removes offer `o` from the open ones (its pending accept is settled by the caller). */
  forget(o) {
    if (this.open.get(o.callId) === o) this.open.delete(o.callId);
    clearTimeout(o.timer);
  }

  /** Forgets offer `id`: fails its pending accept, tells the page when `announce`. */
  drop(id, reason, announce) {
    const o = this.open.get(id);
    if (!o) return;
    this.forget(o);
    if (o.accepting) this.settle(o, null, gone(id, reason));
    if (announce) this.emit('incoming_cancelled', { call_id: id, callId: id, reason });
  }

  settle(o, answer, err) {
    const a = o.accepting;
    if (!a) return;
    o.accepting = null;
    clearTimeout(a.timer);
    if (err) a.reject(err);
    else a.resolve(answer);
  }

  onAccepted(id, f) {
    const o = this.open.get(id);
    // No accept waiting (it timed out, or the session was replaced meanwhile): the
    // gateway's own connect timeout frees the caller.
    if (!o || !o.accepting) return;
    this.forget(o);
    this.settle(o, { call_id: id, room: f.room, ws_url: f.ws_url, token: f.token });
  }

  onError(id, f) {
    const err = new PresenceError(f.code || 'error', f.message);
    const o = this.open.get(id);
    if (o && o.accepting) {
      // The accept was refused: the offer cannot be taken any more.
      this.forget(o);
      this.settle(o, null, err);
    } else {
      this.emit('error', { code: err.code, message: err.message, callId: id });
    }
  }

  /**
   * Accepts offer `id`: resolves with the answer {call_id, room, ws_url, token}, or
   * rejects (PresenceError) at once when the offer is not open (`offer_gone`), with the
   * gateway's code when it refuses, `timeout` after 10 s. Over the socket when it is
   * up, else over HTTP (the socket is reconnecting: the offer still rings).
   */
  accept(id) {
    const o = this.open.get(id);
    if (!o) return Promise.reject(gone(id, 'cancelled, expired, answered or never offered'));
    if (o.accepting) return o.accepting.promise; // a double click: one accept
    const a = {};
    a.promise = new Promise((resolve, reject) => { a.resolve = resolve; a.reject = reject; });
    o.accepting = a;
    a.timer = setTimeout(() => {
      this.forget(o);
      this.settle(o, null, new PresenceError('timeout', `the gateway did not answer the accept of call ${id}`));
    }, ACCEPT_TIMEOUT_MS);
    a.overSocket = this.send({ type: 'accept', call_id: id });
    if (!a.overSocket) this.acceptHttp(o, a);
    return a.promise;
  }

  acceptHttp(o, a) {
    const pending = this.acceptOverHttp(o.callId);
    if (!pending) {
      this.settle(o, null, new PresenceError('not_connected', 'the presence channel is not connected'));
      return;
    }
    pending.then((answer) => {
      if (o.accepting !== a) return; // settled meanwhile (timeout, cancel)
      this.forget(o);
      this.settle(o, { call_id: o.callId, room: answer.room, ws_url: answer.ws_url, token: answer.token });
    }, (e) => {
      if (o.accepting !== a) return;
      // The gateway refused it: the offer is gone. A network failure leaves the offer
      // open for another try.
      if (e && e.status) this.forget(o);
      this.settle(o, null, e instanceof PresenceError ? e : new PresenceError('not_connected', e && e.message));
    });
  }

  /**
   * Rejects offer `id`: resolves once the frame is sent. The offer is forgotten either
   * way (the page closes its card); unsent, the gateway moves the offer on after ring_ms.
   */
  reject(id) {
    const o = this.open.get(id);
    if (!o) return Promise.reject(gone(id, 'cancelled, expired, answered or never offered'));
    if (o.accepting) return Promise.reject(new PresenceError('accepting', `call ${id} is being accepted`));
    this.drop(id, 'rejected', false);
    if (!this.send({ type: 'reject', call_id: id })) {
      return Promise.reject(new PresenceError('not_connected', 'the presence channel is not connected; the offer moves on when it stops ringing'));
    }
    return Promise.resolve();
  }

  /** The socket dropped: an accept sent over it gets no answer; the offers stay. */
  onDrop() {
    for (const o of this.open.values()) {
      if (o.accepting && o.accepting.overSocket) {
        this.settle(o, null, new PresenceError('disconnected', `the connection dropped before the accept of call ${o.callId} was answered; accept again`));
      }
    }
  }

  /** The session ended for good: every offer is gone. */
  close() {
    for (const id of [...this.open.keys()]) this.drop(id, 'session_closed', true);
  }

  /** The open offers, oldest first, as the `incoming` events described them. */
  list() {
    return [...this.open.values()].map((o) => offerDetail(o));
  }
}
