// c2c-client.js — the ready-made agent browser client of the Click2Call contract,
// exposed as `window.C2C` (and `window.LivekitClient` for pages that follow the
// integration guide's hand-written snippet). Built by esbuild from this file and the
// pinned livekit-client, and served by the gateway from its own origin.
//
// The contract's hard rule lives here: the agent joins the room and publishes the mic
// BEFORE /connect dials the customer. Teardown is owned by the gateway; this client only
// reports what the browser sees (ANSWERED, hangup, tab closing).
import * as LivekitClient from 'livekit-client';

const { Room, RoomEvent, Track } = LivekitClient;

/** States a call moves through, in order; `ended` is terminal. */
const STATES = ['idle', 'joining', 'dialing', 'ringing', 'active', 'ended'];

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

// Makes the Room a call joins. Null: livekit-client's `new Room()` (production). A host
// page may supply its own with C2C.configure({ roomFactory }) — e.g. a test standing in
// for LiveKit where no WebRTC media server exists. What startCall uses of the object it
// returns (the whole contract a stand-in must honour):
//   on(RoomEvent.TrackSubscribed | ParticipantConnected | ParticipantAttributesChanged |
//      ParticipantDisconnected | Disconnected, handler)   — livekit-client's event names
//   connect(wsUrl, token, connectOptions) -> Promise      — rejects when the join fails
//   localParticipant.setMicrophoneEnabled(true, captureOptions) -> Promise
//   localParticipant.getTrackPublication(Track.Source.Microphone) -> { track: { mute(), unmute() } } | undefined
//   remoteParticipants: Map of participants { identity, attributes }
//   disconnect() -> Promise
// A SIP participant is one whose identity starts with "sip"; its `attributes` carry
// `sip.callStatus` (dialing | ringing | active | hangup), as LiveKit SIP sets them.
let roomFactory = null;

const listeners = new Map(); // event name -> Set of handlers
let current = null; // { callId, room, audioEl, state, answered }

function emit(event, detail) {
  const set = listeners.get(event);
  if (!set) return;
  for (const fn of [...set]) {
    try {
      fn(detail);
    } catch (e) {
      // A host page handler must not break the call flow.
      setTimeout(() => { throw e; });
    }
  }
}

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

async function post(url, body) {
  const init = { method: 'POST', keepalive: true };
  if (body !== undefined) {
    init.headers = { 'Content-Type': 'application/json' };
    init.body = JSON.stringify(body);
  }
  const r = await fetch(url, init);
  if (!r.ok) {
    let msg = `HTTP ${r.status}`;
    try {
      const j = await r.json();
      if (j && j.error && j.error.message) msg = j.error.message;
    } catch (_) { /* not JSON */ }
    const err = new Error(msg);
    err.status = r.status;
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

/**
 * Asks for microphone permission once (call at agent login), so the first call does
 * not stall on a permission prompt. Releases the device right away.
 */
async function preGrantMic() {
  const s = await navigator.mediaDevices.getUserMedia({ audio: true });
  s.getTracks().forEach((t) => t.stop());
  return true;
}

/**
 * Starts a call from the /click2call response `res` ({call_id, ws_url, token, ...}):
 * joins the room, publishes the mic, and only then POSTs /connect. Resolves with
 * `{ callId, room }` once /connect answered; on failure ends the call (the gateway
 * tears down) and rejects.
 * `opts.connectOptions` is passed to livekit-client's Room.connect.
 */
async function startCall(res, opts) {
  if (!res || typeof res.call_id !== 'string' || !res.ws_url || !res.token) {
    throw new Error('startCall needs the /click2call response: call_id, ws_url, token');
  }
  if (current && current.state !== 'ended') {
    throw new Error('a call is already in progress; end it first');
  }
  const room = roomFactory ? roomFactory() : new Room();
  const audioEl = document.createElement('audio');
  audioEl.autoplay = true;
  audioEl.hidden = true;
  document.body.appendChild(audioEl);
  const call = { callId: res.call_id, room, audioEl, state: 'idle', answered: false, joined: false };
  current = call;
  setState('joining');

  room.on(RoomEvent.TrackSubscribed, (track, _pub, p) => {
    if (track.kind === Track.Kind.Audio && isSip(p)) track.attach(audioEl);
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

  let stage = 'join';
  try {
    // JOIN + PUBLISH MIC FIRST ...
    await room.connect(res.ws_url, res.token, (opts && opts.connectOptions) || undefined);
    call.joined = true;
    emit('joined', { callId: call.callId });
    await room.localParticipant.setMicrophoneEnabled(true, {
      echoCancellation: true, noiseSuppression: true, autoGainControl: true,
    });
    emit('published', { callId: call.callId });
    if (current !== call || call.state === 'ended') throw new Error('call ended while joining');
    // ... THEN dial.
    stage = 'connect';
    setState('dialing');
    await post(callUrl(call.callId, 'connect'));
    setState('ringing');
    for (const p of room.remoteParticipants.values()) watchSip(call, p);
    return { callId: call.callId, room };
  } catch (e) {
    emit('error', { stage, callId: call.callId, message: e && e.message ? e.message : String(e) });
    await endCall(stage === 'join' ? 'join_failed' : 'connect_failed');
    throw e;
  }
}

/** Mutes or unmutes the agent's microphone. Returns the new muted state. */
async function setMuted(muted) {
  if (!current || !current.room) return false;
  const pub = current.room.localParticipant.getTrackPublication(Track.Source.Microphone);
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
  let error = null;
  try {
    await post(callUrl(call.callId, 'hangup'));
  } catch (e) {
    error = e;
    emit('error', { stage: 'hangup', callId: call.callId, message: e.message });
  }
  try {
    await call.room.disconnect();
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

/** Subscribes to an event: 'state', 'joined', 'published', 'muted', 'ended', 'error'. */
function on(event, fn) {
  if (!listeners.has(event)) listeners.set(event, new Set());
  listeners.get(event).add(fn);
  return () => off(event, fn);
}

function off(event, fn) {
  const set = listeners.get(event);
  if (set) set.delete(fn);
}

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

const C2C = Object.freeze({
  version: '1',
  STATES,
  preGrantMic,
  startCall,
  setMuted,
  endCall: () => endCall('agent_hangup'),
  on,
  off,
  configure,
  get base() { return base; },
  get state() { return current ? current.state : 'idle'; },
  get callId() { return current && current.state !== 'ended' ? current.callId : null; },
  get room() { return current ? current.room : null; },
});

window.C2C = C2C;
window.LivekitClient = window.LivekitClient || LivekitClient;
