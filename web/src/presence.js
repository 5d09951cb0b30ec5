// presence.js — the browser side of the presence channel (docs/agents.md, "Presence
// channel"): one WebSocket per tab, authenticated by a presence token sent in its first
// frame (never in the URL, which proxies, logs and the Referer keep), carrying the
// agent's availability both ways. Shared by /js/c2c-client.js (C2C.presence) and the
// console's Agents page, which holds a supervisor session.
import { emitter } from './emitter.js';
import { PresenceError } from './presence-error.js';
import { Offers } from './offers.js';

export { PresenceError };

export const AVAILABILITIES = Object.freeze(['available', 'away', 'offline']);

const REPLACED = 4409;
const UNAUTHORIZED = 4401;
// Close codes after which reconnecting cannot help, with the error code each reports.
// 4409 (replaced) ends the session too, but is reported as 'replaced', not an error.
const FINAL_CLOSES = new Map([
  [4400, 'protocol_error'], // the gateway refused our frames: it would again
  [4410, 'agent_removed'],
  [4429, 'rate_limited'], // closed for flooding: a reconnect would go on flooding
  [1003, 'protocol_error'],
  [1009, 'protocol_error'],
]);

// Reconnect delays grow from 0.5 s and are capped at 10 s, so a short drop comes back
// within the gateway's grace (20 s by default) and keeps its availability. The jitter
// spreads out the tabs that a gateway restart disconnected all at the same moment.
const BACKOFF_FIRST_MS = 500;
const BACKOFF_MAX_MS = 10000;
const ANSWER_TIMEOUT_MS = 10000; // how long a set_availability waits for its answer
// The presence channel's path; an inbound accept's HTTP twin is beside it.
const PRESENCE_PATH = '/api/c2c/agents/presence';
const DEFAULT_HEARTBEAT_S = 15;

/** The delay before reconnect number `attempt` (0-based): half fixed, half random. */
export function backoffMs(attempt) {
  const cap = Math.min(BACKOFF_MAX_MS, BACKOFF_FIRST_MS * 2 ** attempt);
  return cap / 2 + Math.random() * (cap / 2);
}

// When an availability change happened: the gateway sends Unix milliseconds (`at_ms`,
// as everywhere in its API); events hand the page an ISO 8601 string (`at`).
function at(f) {
  if (typeof f.at === 'string') return f.at;
  return typeof f.at_ms === 'number' ? new Date(f.at_ms).toISOString() : null;
}

const availabilityDetail = (f) => ({
  agentId: f.agent_id, availability: f.availability, onCall: !!f.on_call, reason: f.reason, at: at(f),
});

const agentDetail = (a) => ({
  agentId: a.agent_id, name: a.name, telephonyEnabled: !!a.telephony_enabled, availability: a.availability, onCall: !!a.on_call,
});

const readyDetail = (f) => ({
  sessionId: f.session_id, agentId: f.agent_id || null, supervisor: !!f.supervisor, availability: f.availability,
  telephonyEnabled: !!f.telephony_enabled, onCall: !!f.on_call, heartbeatSeconds: f.heartbeat_seconds, graceSeconds: f.grace_seconds,
});

/** What fetchToken resolved to: the token itself, or the session answer holding it. */
function tokenOf(v) {
  const t = typeof v === 'string' ? v : v && v.token;
  if (typeof t !== 'string' || !t) throw new Error('fetchToken must resolve to a presence token (or {token})');
  return t;
}

class Session {
  constructor({ token, fetchToken, url }) {
    this.token = token;
    this.fetchToken = fetchToken || null;
    this.url = url;
    this.events = emitter();
    this.ws = null;
    this.ready = null; // the last `ready` frame, kept up to date by own availability events
    this.state = 'connecting'; // connecting | ready | reconnecting | closed
    this.pending = []; // set_availability requests awaiting their answer, oldest first
    this.attempt = 0; // reconnects since the last `ready`
    this.retryTimer = null;
    this.beat = null; // the heartbeat interval
    this.pingSentAt = 0; // when the unanswered ping went out; 0: none outstanding
    this.needToken = false; // the gateway refused the token (4401): fetch one before reconnecting
    this.tokenIsFresh = false; // the token came from fetchToken and was not accepted yet
    this.wasReplaced = false;
    this.opened = null; // connect()'s { resolve, reject } until the first `ready`
    // Inbound-call offers (offers.js). Accept/reject frames go out on a ready socket only:
    // before `ready` the gateway takes nothing but the auth frame.
    this.offers = new Offers({
      send: (frame) => this.state === 'ready' && this.send(frame),
      emit: this.events.emit,
      acceptOverHttp: (callId) => this.acceptOverHttp(callId),
    });
    this.handle = makeHandle(this);
  }

  start() {
    return new Promise((resolve, reject) => {
      this.opened = { resolve, reject };
      this.open();
    });
  }

  open() {
    let ws;
    try {
      ws = new WebSocket(this.url);
    } catch (e) {
      this.finish(1006, 'connect_failed', e.message); // a malformed URL: retrying cannot help
      return;
    }
    this.ws = ws;
    // Reconnecting: name the session we had, so the gateway keeps its availability.
    const resume = this.ready ? { resume: this.ready.session_id } : {};
    ws.onopen = () => this.send({ type: 'auth', token: this.token, ...resume });
    // A socket we gave up on (replaced by a newer one) may still report: ignore it.
    ws.onmessage = (e) => { if (ws === this.ws) this.onFrame(e.data); };
    ws.onclose = (e) => { if (ws === this.ws) this.onClose(e.code); };
  }

  send(frame) {
    if (!this.ws || this.ws.readyState !== WebSocket.OPEN) return false;
    this.ws.send(JSON.stringify(frame));
    return true;
  }

  onFrame(text) {
    this.pingSentAt = 0; // any frame shows the gateway is alive
    let f;
    try {
      f = JSON.parse(text);
    } catch (_) {
      return; // the gateway only sends JSON; nothing to act on
    }
    switch (f && f.type) {
      case 'ready': this.onReady(f); break;
      case 'agents': this.events.emit('agents', { agents: (f.agents || []).map(agentDetail) }); break;
      case 'availability': this.onAvailability(f); break;
      case 'telephony': this.onTelephony(f); break;
      case 'replaced': this.onReplaced(); break;
      default:
        // Offers and the answers to accept/reject (an error naming a call); then the
        // errors answering set_availability. `pong` and frame types a newer gateway
        // may add are ignored.
        if (!this.offers.onFrame(f) && f && f.type === 'error') this.onError(f);
        break;
    }
  }

  onReady(f) {
    this.ready = { ...f };
    this.state = 'ready';
    this.attempt = 0;
    this.tokenIsFresh = false;
    this.startHeartbeat(f.heartbeat_seconds);
    if (this.opened) {
      this.opened.resolve(this.handle);
      this.opened = null;
    }
    this.events.emit('ready', readyDetail(f));
  }

  onAvailability(f) {
    const d = availabilityDetail(f);
    const own = this.ready && this.ready.agent_id && f.agent_id === this.ready.agent_id;
    if (own) {
      this.ready.availability = f.availability;
      this.ready.on_call = !!f.on_call;
      // The gateway announces telephony going off; it coming back on shows as an
      // accepted available/away.
      if (f.reason === 'telephony_disabled') this.ready.telephony_enabled = false;
      if (f.reason === 'set' && f.availability !== 'offline') this.ready.telephony_enabled = true;
      if (f.reason === 'set') this.settle(f.availability, d);
    }
    this.events.emit('availability', d);
  }

  // The registry switched the agent's telephony on or off (the gateway tells both).
  onTelephony(f) {
    const own = this.ready && this.ready.agent_id && f.agent_id === this.ready.agent_id;
    if (own) this.ready.telephony_enabled = !!f.telephony_enabled;
    this.events.emit('telephony', { agentId: f.agent_id, telephonyEnabled: !!f.telephony_enabled, at: f.at_ms });
  }

  // Error frames carry no request id: the gateway answers set_availability frames in
  // order, so an error answers the oldest one still waiting.
  onError(f) {
    const err = new PresenceError(f.code || 'error', f.message);
    const p = this.pending.shift();
    if (p) {
      clearTimeout(p.timer);
      p.reject(err);
    } else {
      this.events.emit('error', { code: err.code, message: err.message });
    }
  }

  onReplaced() {
    if (this.wasReplaced) return;
    this.wasReplaced = true;
    this.events.emit('replaced', {});
  }

  onClose(code) {
    this.ws = null;
    this.stopHeartbeat();
    this.failPending('disconnected');
    this.offers.onDrop();
    if (this.state === 'closed') return;
    if (code === REPLACED) {
      this.onReplaced(); // the close can overtake the `replaced` frame
      this.finish(code, 'replaced');
    } else if (FINAL_CLOSES.has(code)) {
      this.finish(code, FINAL_CLOSES.get(code));
    } else if (code === UNAUTHORIZED) {
      this.onUnauthorized();
    } else if (this.opened) {
      this.finish(code, 'connect_failed'); // the first connect failed: the caller decides
    } else {
      this.reconnectLater(code);
    }
  }

  // The token expired (or was revoked). Only a new one can help, and only once: a token
  // fresh from fetchToken that is refused as well would be refused again.
  onUnauthorized() {
    if (!this.fetchToken || this.tokenIsFresh) {
      this.finish(UNAUTHORIZED, 'unauthorized', 'the gateway refused the presence token (invalid or expired)');
      return;
    }
    this.needToken = true;
    this.reconnectLater(UNAUTHORIZED);
  }

  reconnectLater(code) {
    const delayMs = backoffMs(this.attempt);
    this.attempt += 1;
    this.state = 'reconnecting';
    this.events.emit('reconnecting', { attempt: this.attempt, delayMs: Math.round(delayMs), code });
    this.retryTimer = setTimeout(() => this.reconnect(), delayMs);
  }

  async reconnect() {
    this.retryTimer = null;
    if (this.state === 'closed') return;
    if (this.needToken && !(await this.renewToken())) return;
    if (this.state !== 'closed') this.open(); // disconnect() may have come while fetching
  }

  /** Asks fetchToken for a new token; false when it failed (and what follows is arranged). */
  async renewToken() {
    try {
      this.token = tokenOf(await this.fetchToken());
      this.needToken = false;
      this.tokenIsFresh = true;
      return true;
    } catch (e) {
      if (this.state === 'closed') return false;
      if (this.opened) {
        this.finish(UNAUTHORIZED, 'token_fetch_failed', e.message);
      } else {
        this.events.emit('error', { code: 'token_fetch_failed', message: e.message });
        this.reconnectLater(UNAUTHORIZED);
      }
      return false;
    }
  }

  startHeartbeat(seconds) {
    this.stopHeartbeat();
    const ms = (seconds > 0 ? seconds : DEFAULT_HEARTBEAT_S) * 1000;
    this.beat = setInterval(() => this.heartbeat(ms), ms);
  }

  stopHeartbeat() {
    clearInterval(this.beat);
    this.beat = null;
    this.pingSentAt = 0;
  }

  // Dead when a ping went unanswered for two heartbeats (as the gateway judges us).
  // Timed from the ping, not from the last frame: a throttled background tab ticks
  // late, and a late tick must not look like a silent gateway.
  heartbeat(ms) {
    if (this.pingSentAt && Date.now() - this.pingSentAt >= 2 * ms) {
      this.drop();
      return;
    }
    if (!this.pingSentAt && this.send({ type: 'ping' })) this.pingSentAt = Date.now();
  }

  // A dead network may never deliver the socket's close event: stop waiting for it.
  drop() {
    const ws = this.ws;
    this.ws = null; // its late events, if any, are ignored
    try {
      ws.close(4000, 'heartbeat timeout');
    } catch (_) { /* already closing */ }
    this.onClose(1006);
  }

  setAvailability(availability) {
    if (!AVAILABILITIES.includes(availability)) {
      return Promise.reject(new TypeError(`availability must be one of: ${AVAILABILITIES.join(', ')}`));
    }
    if (this.state !== 'ready') {
      return Promise.reject(new PresenceError('not_connected', 'the presence channel is not connected'));
    }
    if (!this.ready.agent_id) {
      return Promise.reject(new PresenceError('no_agent', 'a supervisor-only session has no availability to set'));
    }
    return new Promise((resolve, reject) => {
      const p = { availability, resolve, reject, timer: null };
      p.timer = setTimeout(() => {
        this.pending = this.pending.filter((x) => x !== p);
        reject(new PresenceError('timeout', 'the gateway did not answer the availability change'));
      }, ANSWER_TIMEOUT_MS);
      this.pending.push(p);
      this.send({ type: 'set_availability', availability });
    });
  }

  /** Resolves the oldest request for `availability` with its confirmation event. */
  settle(availability, detail) {
    const i = this.pending.findIndex((p) => p.availability === availability);
    if (i < 0) return;
    const [p] = this.pending.splice(i, 1);
    clearTimeout(p.timer);
    p.resolve(detail);
  }

  failPending(code) {
    const pending = this.pending;
    this.pending = [];
    for (const p of pending) {
      clearTimeout(p.timer);
      p.reject(new PresenceError(code, `the availability change was not confirmed: ${code}`));
    }
  }

  /** The end of the session, for good: rejects connect() or reports 'closed'. */
  finish(code, reason, message) {
    this.state = 'closed';
    clearTimeout(this.retryTimer);
    this.stopHeartbeat();
    this.failPending(reason);
    this.offers.close();
    const err = new PresenceError(reason, message || `presence channel closed (${reason}, code ${code})`);
    if (this.opened) {
      this.opened.reject(err);
      this.opened = null;
      return;
    }
    if (reason !== 'replaced' && reason !== 'disconnected') this.events.emit('error', { code: reason, message: err.message });
    this.events.emit('closed', { code, reason });
  }

  /**
   * Accepts an offer over HTTP (POST /api/c2c/calls/{id}/accept, the presence token as
   * Bearer) while the socket is down: an offer keeps ringing through a short drop.
   * Null when the presence URL is not the gateway's standard path (no HTTP twin known).
   */
  acceptOverHttp(callId) {
    const u = new URL(this.url);
    if (!u.pathname.endsWith(PRESENCE_PATH)) return null;
    u.protocol = u.protocol === 'wss:' ? 'https:' : 'http:';
    u.pathname = `${u.pathname.slice(0, -PRESENCE_PATH.length)}/api/c2c/calls/${encodeURIComponent(callId)}/accept`;
    u.search = '';
    return this.postAccept(u.href, true);
  }

  async postAccept(url, mayRenew) {
    const r = await fetch(url, { method: 'POST', headers: { Authorization: `Bearer ${this.token}` } });
    // The token may have expired during a long session: one new one, one more try.
    if (r.status === 401 && mayRenew && this.fetchToken) {
      this.token = tokenOf(await this.fetchToken());
      return this.postAccept(url, false);
    }
    const body = await r.json().catch(() => null);
    if (!r.ok) {
      const e = (body && body.error) || {}; // the gateway's one shape: {"error": {code, message}}
      const err = new PresenceError(e.code || `http_${r.status}`, e.message || `HTTP ${r.status}`);
      err.status = r.status;
      throw err;
    }
    return body || {};
  }

  disconnect() {
    if (this.state === 'closed') return;
    const ws = this.ws;
    this.ws = null;
    if (ws) ws.close(1000, 'disconnect');
    this.finish(1000, 'disconnected');
  }
}

function makeHandle(s) {
  const r = (k, fallback) => (s.ready ? s.ready[k] : fallback);
  return Object.freeze({
    /** 'available' | 'away' | 'offline' -> Promise of the confirming 'availability' event. */
    setAvailability: (a) => s.setAvailability(a),
    /** Accepts an inbound-call offer: Promise of {call_id, room, ws_url, token} (offers.js). */
    accept: (callId) => s.offers.accept(callId),
    /** Rejects an inbound-call offer: resolves once the frame is sent. */
    reject: (callId) => s.offers.reject(callId),
    /** The open inbound-call offers, oldest first. */
    get offers() { return s.offers.list(); },
    on: s.events.on,
    off: s.events.off,
    disconnect: () => s.disconnect(),
    /** connecting | ready | reconnecting | closed */
    get state() { return s.state; },
    get sessionId() { return r('session_id', null); },
    get agentId() { return r('agent_id', null) || null; },
    get supervisor() { return !!r('supervisor', false); },
    get availability() { return r('availability', 'offline'); },
    get telephonyEnabled() { return !!r('telephony_enabled', false); },
    get onCall() { return !!r('on_call', false); },
  });
}

/**
 * Opens a presence session: resolves with its handle once the gateway's `ready` frame
 * arrived; rejects (PresenceError) when the first connect fails. `url`: the ws(s) URL of
 * /api/c2c/agents/presence. `fetchToken`: optional, () => Promise of a new token (or
 * {token}), asked when the gateway refuses the current one (4401, e.g. expired).
 */
export function connectPresence({ token, fetchToken, url } = {}) {
  if (typeof token !== 'string' || !token) {
    return Promise.reject(new TypeError('connect needs { token }: a presence token from your backend'));
  }
  if (fetchToken != null && typeof fetchToken !== 'function') {
    return Promise.reject(new TypeError('fetchToken must be a function returning a Promise of a token'));
  }
  if (typeof url !== 'string' || !/^wss?:\/\//.test(url)) {
    return Promise.reject(new TypeError('the presence url must be a ws:// or wss:// URL'));
  }
  return new Session({ token, fetchToken, url }).start();
}
