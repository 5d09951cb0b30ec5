// c2c-client.js — the ready-made agent browser client of the Click2Call contract,
// exposed as `window.C2C`. Built by esbuild and served by the gateway from its own
// origin. It is small: the LiveKit SDK (/js/livekit-client.js, window.LivekitClient) is
// loaded only when the first call starts, so pages that never call do not pay for it.
//
// The contract's hard rule lives here: the agent joins the room and publishes the mic
// BEFORE /connect dials the customer. Teardown is owned by the gateway; this client only
// reports what the browser sees (ANSWERED, hangup, tab closing).
//
// C2C.presence is the agent's availability (docs/agents.md): a presence session and the
// header pill. Inbound calls are offered over that session (docs/inbound.md, "Browser
// client"): C2C.on('incoming'), C2C.accept joins the room the gateway made, C2C.reject.
import { emitter } from './emitter.js';
import { connectPresence, PresenceError } from './presence.js';
import { mountPill } from './presence-pill.js';
import { startTokenRefresh } from './token-refresh.js';

// livekit-client's names for what startCall uses, as plain strings so a stand-in Room
// (roomFactory) works without loading the SDK. Stable across livekit-client 2.x; the
// browser test of the lazy load checks them against the pinned SDK.
const RoomEvent = {
  TrackSubscribed: 'trackSubscribed',
  ParticipantConnected: 'participantConnected',
  ParticipantAttributesChanged: 'participantAttributesChanged',
  ParticipantDisconnected: 'participantDisconnected',
  Disconnected: 'disconnected',
};
const AUDIO = 'audio'; // Track.Kind.Audio
const MICROPHONE = 'microphone'; // Track.Source.Microphone

/** States a call moves through, in order; `ended` is terminal. */
const STATES = ['idle', 'joining', 'dialing', 'ringing', 'active', 'ended'];
/**
 * States of an attempt the DLT rules refused (docs/dlt.md), shown instead of a generic
 * failure: `dlt_pending` while the tenant's Principal Entity binding is not verified
 * (outbound calling off), `dlt_refused` for a call a rule refused (caller-ID series,
 * DND, calling hours). The 'state' event carries the gateway's `code` and `message`.
 */
const DLT_STATES = ['dlt_pending', 'dlt_refused'];
const DLT_CODES = ['dlt_pending', 'caller_id_series', 'dnd_blocked', 'outside_calling_hours', 'dnd_unavailable'];

/** An Error for a DLT refusal `{code, message}`, with its `code` and `status`. */
function dltError(e, status) {
  const err = new Error(e.message || e.code);
  err.code = e.code;
  err.status = status;
  return err;
}

const dltState = (code) => (code === 'dlt_pending' ? 'dlt_pending' : 'dlt_refused');

// Where the gateway is: the origin this script was served from (it is served by the
// gateway itself), unless the host page says otherwise with C2C.configure({ base }).
let base = (() => {
  try {
    const src = document.currentScript && document.currentScript.src;
    return src ? new URL(src).origin : window.location.origin;
  } catch (_) {
    return window.location.origin;
  }
})();
// A page whose CSP allows scripts by nonce gave this script one: the SDK script it
// injects carries the same, or the CSP would block it.
const scriptNonce = (document.currentScript && document.currentScript.nonce) || '';

// Makes the Room a call joins. Null: livekit-client's `new Room()` (production; the SDK
// is loaded then). A host page may supply its own with C2C.configure({ roomFactory }) —
// e.g. a test standing in for LiveKit where no WebRTC media server exists; the SDK is
// not loaded for it. What startCall uses of the object it returns (the whole contract
// a stand-in must honour):
//   on(RoomEvent.TrackSubscribed | ParticipantConnected | ParticipantAttributesChanged |
//      ParticipantDisconnected | Disconnected, handler)   — livekit-client's event names
//   connect(wsUrl, token, connectOptions) -> Promise      — rejects when the join fails
//   localParticipant.setMicrophoneEnabled(true, captureOptions) -> Promise
//   localParticipant.getTrackPublication('microphone') -> { track: { mute(), unmute() } } | undefined
//   remoteParticipants: Map of participants { identity, attributes }
//   disconnect() -> Promise
//   updateToken(token)  — optional: receives each refreshed LiveKit token during the
//                         call (livekit-client's Room gets it in room.engine.token)
// A SIP participant is one whose identity starts with "sip"; its `attributes` carry
// `sip.callStatus` (dialing | ringing | active | hangup), as LiveKit SIP sets them.
let roomFactory = null;

const { on, off, emit } = emitter();
let current = null; // { callId, direction, room, audioEl, state, answered, joined, refresher }
let sdkLoad = null; // the pending or done load of /js/livekit-client.js
let lastPresence = null; // the latest presence handle: the pill's and C2C.accept's default
let offerForwards = []; // C2C's subscriptions to lastPresence's offer events

function setState(state, extra) {
  if (!current || current.state === state || current.state === 'ended') return;
  current.state = state;
  emit('state', Object.assign({ state, callId: current.callId }, extra || {}));
}

function callUrl(callId, action) {
  const id = encodeURIComponent(callId);
  return `${base}/api/c2c/calls/${id}${action ? '/' + action : ''}`;
}

function isSip(p) {
  return !!p && typeof p.identity === 'string' && p.identity.startsWith('sip');
}

async function post(url, body, headers) {
  const init = { method: 'POST', keepalive: true, headers: Object.assign({}, headers) };
  if (body !== undefined) {
    init.headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  const r = await fetch(url, init);
  if (!r.ok) {
    let msg = `HTTP ${r.status}`;
    let code;
    try {
      const j = await r.json();
      if (j && j.error && j.error.message) msg = j.error.message;
      if (j && j.error && typeof j.error.code === 'string') code = j.error.code;
    } catch (_) { /* not JSON */ }
    const err = new Error(msg);
    err.status = r.status;
    err.code = code;
    throw err;
  }
  return r.json().catch(() => ({}));
}

/** Reports ANSWERED once per call: the answer signal in webhook mode. */
function reportAnswered(call) {
  if (call.answered) return;
  call.answered = true;
  setState('active');
  post(callUrl(call.callId, 'status'), { status: 'ANSWERED' }).catch((e) =>
    emit('error', { stage: 'status', callId: call.callId, message: e.message }));
}

function watchSip(call, p) {
  if (!isSip(p)) return;
  const status = p.attributes && p.attributes['sip.callStatus'];
  if (status === 'active') reportAnswered(call);
  else if (status === 'ringing' || status === 'dialing') setState('ringing');
}

/** Injects /js/livekit-client.js; resolves with window.LivekitClient once it ran. */
function injectSdk(src) {
  return new Promise((resolve, reject) => {
    const s = document.createElement('script');
    s.src = src;
    s.async = true;
    if (scriptNonce) s.nonce = scriptNonce;
    s.onload = () => (window.LivekitClient
      ? resolve(window.LivekitClient)
      : reject(new Error(`${src} loaded but did not define window.LivekitClient`)));
    s.onerror = () => {
      s.remove();
      reject(new Error(`could not load the LiveKit SDK from ${src} (network, or the page's Content-Security-Policy)`));
    };
    document.head.appendChild(s);
  });
}

/**
 * The LiveKit SDK (window.LivekitClient), loading /js/livekit-client.js from the
 * gateway on first use. A page that already has it (its own script tag) keeps it;
 * concurrent callers share one load; a failed load is retried by the next call.
 */
function loadLivekit() {
  if (window.LivekitClient) return Promise.resolve(window.LivekitClient);
  if (!sdkLoad) {
    sdkLoad = injectSdk(`${base}/js/livekit-client.js`).catch((e) => {
      sdkLoad = null;
      throw e;
    });
  }
  return sdkLoad;
}

/** A new Room: the host page's stand-in, or livekit-client's (loaded on demand). */
async function makeRoom() {
  if (roomFactory) return roomFactory();
  const { Room } = await loadLivekit();
  return new Room();
}

// livekit-client 2.x resumes and reconnects with the token in room.engine.token (its
// own server-pushed refreshes are stored there too), so setting it takes effect without
// touching the live connection. A stand-in Room receives it through updateToken().
function applyToken(room, token) {
  if (room.engine) room.engine.token = token;
  if (typeof room.updateToken === 'function') room.updateToken(token);
}

/** Refreshes the call's LiveKit token until the call ends (see token-refresh.js). */
function keepTokenFresh(call, token, receivedAt) {
  call.refresher = startTokenRefresh({
    token,
    receivedAt,
    // The current token proves this tab holds the call (the call id alone must not
    // open the call's audio); it travels in a header, never in the URL.
    fetchToken: (current) => post(callUrl(call.callId, 'token'), undefined, { Authorization: `Bearer ${current}` }),
    apply: (t) => applyToken(call.room, t),
    onRefreshed: (r) => emit('token_refreshed', { callId: call.callId, expiresAt: r.expires_at_ms }),
    onFailed: (e) => emit('error', {
      stage: 'token', code: 'token_refresh_failed', callId: call.callId, message: e && e.message ? e.message : String(e),
    }),
  });
}

/**
 * Asks for microphone permission once (call at agent login), so the first call does
 * not stall on a permission prompt. Releases the device right away.
 */
async function preGrantMic() {
  const s = await navigator.mediaDevices.getUserMedia({ audio: true });
  s.getTracks().forEach((t) => t.stop());
  return true;
}

/** A new current call; throws while another one is in progress. */
function newCall(callId, direction) {
  if (current && current.state !== 'ended') {
    throw new PresenceError('call_in_progress', 'a call is already in progress; end it first');
  }
  const audioEl = document.createElement('audio');
  audioEl.autoplay = true;
  audioEl.hidden = true;
  document.body.appendChild(audioEl);
  current = { callId, direction, room: null, audioEl, state: 'idle', answered: false, joined: false, refresher: null };
  setState('joining');
  return current;
}

/**
 * Joins the call's room with `res` ({ws_url, token}) and publishes the mic: what
 * outbound and inbound calls share. Resolves with the Room once the mic is published.
 * `receivedAt`: when the token arrived (see token-refresh.js).
 */
async function joinRoom(call, res, opts, receivedAt) {
  const room = await makeRoom();
  call.room = room;
  if (current !== call || call.state === 'ended') throw new Error('call ended while loading the LiveKit SDK');
  watchRoom(call, room);
  await room.connect(res.ws_url, res.token, (opts && opts.connectOptions) || undefined);
  call.joined = true;
  keepTokenFresh(call, res.token, receivedAt);
  emit('joined', { callId: call.callId });
  await room.localParticipant.setMicrophoneEnabled(true, {
    echoCancellation: true, noiseSuppression: true, autoGainControl: true,
  });
  emit('published', { callId: call.callId });
  if (current !== call || call.state === 'ended') throw new Error('call ended while joining');
  return room;
}

/** A call that failed at `stage`: reported, then ended (the gateway tears down). */
async function failCall(call, stage, e) {
  emit('error', { stage, callId: call.callId, message: e && e.message ? e.message : String(e) });
  // Only this call: a later call may be current by now (the SDK load is shared).
  if (current === call) await endCall(stage === 'join' ? 'join_failed' : 'connect_failed');
  else if (call.room) await call.room.disconnect().catch(() => {});
}

/**
 * Starts a call from the /click2call response `res` ({call_id, ws_url, token, ...}):
 * joins the room, publishes the mic, and only then POSTs /connect. Resolves with
 * `{ callId, room }` once /connect answered; on failure ends the call (the gateway
 * tears down) and rejects.
 * `opts.connectOptions` is passed to livekit-client's Room.connect.
 */
async function startCall(res, opts) {
  // The CRM handed over a refused /click2call's body: no call, but the agent sees why.
  if (res && res.error && DLT_CODES.includes(res.error.code)) {
    emit('state', { state: dltState(res.error.code), callId: null, code: res.error.code, message: res.error.message });
    throw dltError(res.error);
  }
  if (!res || typeof res.call_id !== 'string' || !res.ws_url || !res.token) {
    throw new Error('startCall needs the /click2call response: call_id, ws_url, token');
  }
  const receivedAt = Date.now(); // when the token was (about) minted: see token-refresh.js
  const call = newCall(res.call_id, 'outbound');
  let stage = 'join';
  try {
    // JOIN + PUBLISH MIC FIRST ...
    const room = await joinRoom(call, res, opts, receivedAt);
    // ... THEN dial.
    stage = 'connect';
    setState('dialing');
    await post(callUrl(call.callId, 'connect'));
    setState('ringing');
    for (const p of room.remoteParticipants.values()) watchSip(call, p);
    return { callId: call.callId, room };
  } catch (e) {
    // Refused at the moment of dialling (outbound switched off, the window closed, the
    // number put on the DND list since /click2call): the agent sees the rule.
    if (stage === 'connect' && DLT_CODES.includes(e.code)) {
      setState(dltState(e.code), { code: e.code, message: e.message });
    }
    await failCall(call, stage, e);
    throw e;
  }
}

/**
 * Accepts the inbound-call offer `callId` (an 'incoming' event) over the latest
 * presence session, then joins the room the gateway made for it and publishes the mic.
 * No /connect: the gateway forwards the held caller into that room itself, and the
 * call turns active when LiveKit's SIP participant does (sip.callStatus, as outbound).
 * Resolves with `{ callId, room }` once the mic is published. Rejects with a
 * PresenceError whose `code` says why: `offer_gone` (cancelled, expired, taken, never
 * offered: no round trip), the gateway's code, `timeout`, `not_connected`,
 * `call_in_progress`; a failed join ends the call (POST /hangup) and rejects.
 * Hang up with C2C.endCall(), as outbound.
 */
async function accept(callId, opts) {
  if (current && current.state !== 'ended') {
    throw new PresenceError('call_in_progress', 'a call is already in progress; end it first');
  }
  if (!lastPresence) {
    throw new PresenceError('not_connected', 'no presence session: C2C.presence.connect() first');
  }
  const res = await lastPresence.accept(callId);
  const receivedAt = Date.now();
  let call;
  try {
    call = newCall(callId, 'inbound');
  } catch (e) {
    // A call started while the gateway answered: this one is ours now, so free it.
    post(callUrl(callId, 'hangup')).catch(() => {});
    throw e;
  }
  try {
    if (!res.ws_url || !res.token) throw new Error('the accept answer has no ws_url or token');
    const room = await joinRoom(call, res, opts, receivedAt);
    // The caller's phone is ringing until LiveKit bridges it into the room; the SIP
    // participant's status may already have moved the state on.
    if (call.state === 'joining') setState('ringing');
    for (const p of room.remoteParticipants.values()) watchSip(call, p);
    return { callId, room };
  } catch (e) {
    await failCall(call, 'join', e);
    throw e;
  }
}

/** Rejects the inbound-call offer `callId` over the latest presence session. */
async function reject(callId) {
  if (!lastPresence) {
    throw new PresenceError('not_connected', 'no presence session: C2C.presence.connect() first');
  }
  return lastPresence.reject(callId);
}

/** Follows the room: the customer's audio, SIP call status, departures. */
function watchRoom(call, room) {
  room.on(RoomEvent.TrackSubscribed, (track, _pub, p) => {
    if (track.kind === AUDIO && isSip(p)) track.attach(call.audioEl);
  });
  room.on(RoomEvent.ParticipantConnected, (p) => watchSip(call, p));
  room.on(RoomEvent.ParticipantAttributesChanged, (changed, p) => {
    if (!isSip(p) || !('sip.callStatus' in changed)) return;
    watchSip(call, p);
  });
  // The customer dropped: end the call (the gateway finalizes and sends the webhook).
  room.on(RoomEvent.ParticipantDisconnected, (p) => {
    if (isSip(p) && current === call) endCall('customer_dropped');
  });
  // After the join only: a failed join also disconnects, and startCall's catch ends
  // that call with the reason that tells what failed.
  room.on(RoomEvent.Disconnected, () => {
    if (current === call && call.joined && call.state !== 'ended') endCall('room_disconnected');
  });
}

/** Mutes or unmutes the agent's microphone. Returns the new muted state. */
async function setMuted(muted) {
  if (!current || !current.room) return false;
  const pub = current.room.localParticipant.getTrackPublication(MICROPHONE);
  if (pub && pub.track) {
    if (muted) await pub.track.mute();
    else await pub.track.unmute();
  }
  emit('muted', { callId: current.callId, muted: !!muted });
  return !!muted;
}

/**
 * Ends the current call: POST /hangup (idempotent; the gateway owns teardown), then
 * leaves the room. Safe to call more than once.
 */
async function endCall(reason) {
  const call = current;
  if (!call || call.state === 'ended') return;
  setState('ended', { reason: reason || 'agent_hangup' });
  if (call.refresher) call.refresher.stop();
  let error = null;
  try {
    await post(callUrl(call.callId, 'hangup'));
  } catch (e) {
    error = e;
    emit('error', { stage: 'hangup', callId: call.callId, message: e.message });
  }
  try {
    if (call.room) await call.room.disconnect();
  } catch (_) { /* already gone */ }
  call.audioEl.remove();
  emit('ended', { callId: call.callId, reason: reason || 'agent_hangup', hangupSent: !error });
}

// Flush a hangup if the tab closes mid-call: sendBeacon survives the unload.
window.addEventListener('beforeunload', () => {
  if (current && current.state !== 'ended') {
    navigator.sendBeacon(callUrl(current.callId, 'hangup'));
  }
});

/**
 * Configures the client. `base`: another gateway origin (default: where this script
 * came from). `roomFactory`: a function returning the Room the next calls join (see
 * the contract above `roomFactory`); null restores livekit-client's Room.
 */
function configure(o) {
  if (o && typeof o.base === 'string') base = o.base.replace(/\/+$/, '');
  if (o && 'roomFactory' in o) {
    if (o.roomFactory !== null && typeof o.roomFactory !== 'function') {
      throw new TypeError('roomFactory must be a function returning a Room, or null');
    }
    roomFactory = o.roomFactory;
  }
}

const OFFER_EVENTS = ['incoming', 'incoming_update', 'incoming_cancelled'];

// Where the presence channel is: this gateway, over ws:// or wss:// as its base is.
const presenceUrl = () => `${base.replace(/^http/, 'ws')}/api/c2c/agents/presence`;

const presence = Object.freeze({
  /**
   * Opens the agent's presence session: `token` from your backend (POST
   * /api/c2c/agents/{agent_id}/session), `fetchToken` to get another when it expired,
   * `url` another presence endpoint. Resolves with the handle once the gateway is ready.
   */
  async connect(o) {
    const { token, fetchToken, url } = o || {};
    const handle = await connectPresence({ token, fetchToken, url: url || presenceUrl() });
    lastPresence = handle;
    // C2C.on('incoming'...) follows the latest session only: an older one's offers
    // would be accepted over the newer one, which never heard of them.
    offerForwards.forEach((unsubscribe) => unsubscribe());
    offerForwards = OFFER_EVENTS.map((event) => handle.on(event, (d) => emit(event, d)));
    return handle;
  },
  /** The availability pill in `el`, for `handle` (default: the latest connected). */
  mountPill(el, o) {
    const { handle, telephonyEnabled } = o || {};
    return mountPill(el, { handle: handle || lastPresence, telephonyEnabled });
  },
});

const C2C = Object.freeze({
  version: '2',
  STATES,
  DLT_STATES,
  preGrantMic,
  startCall,
  accept,
  reject,
  setMuted,
  endCall: () => endCall('agent_hangup'),
  /**
   * Events: 'state', 'joined', 'published', 'muted', 'token_refreshed', 'ended', 'error';
   * from the latest presence session: 'incoming', 'incoming_update', 'incoming_cancelled'.
   */
  on,
  off,
  configure,
  loadLivekit,
  presence,
  get base() { return base; },
  get state() { return current ? current.state : 'idle'; },
  get callId() { return current && current.state !== 'ended' ? current.callId : null; },
  /** 'outbound' | 'inbound' for the current call, null without one. */
  get direction() { return current && current.state !== 'ended' ? current.direction : null; },
  /** The latest presence session's open inbound-call offers, oldest first. */
  get offers() { return lastPresence ? lastPresence.offers : []; },
  get room() { return current ? current.room : null; },
});

window.C2C = C2C;
