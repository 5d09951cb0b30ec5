// A stand-in for livekit-client's Room, for the browser tests of what the agent client
// does AFTER joining (the LiveKit simulator has no WebRTC, so a real Room never
// connects). It implements exactly the subset c2c-client.js uses (see the contract
// above `roomFactory` in web/src/c2c-client.js), with livekit-client's own RoomEvent
// names, and is driven by the test through page.evaluate:
//   room.sipJoins(status)     ParticipantConnected  (identity "sip-customer", kind SIP)
//   room.sipStatus(status)    ParticipantAttributesChanged {"sip.callStatus": status}
//   room.sipLeaves()          ParticipantDisconnected
// and records what the client handed it: `calls` (every Room API call, in order) and
// `tokens` (each refreshed LiveKit token given to updateToken, in order).
// Everything outside the Room is real: the gateway, its simulator, the CRM sink.
//
// `installFakeRoom` runs IN THE PAGE (Playwright serializes it), so it is
// self-contained. It reports each step to the test through the page binding
// `__fakeRoom(step, detail)` (page.exposeFunction) and awaits it, so the test's record
// of "connect done" / "mic published" is in place before the client can go on.
// `withFakeRoom(p)` (Node side) wires it into a page: the join and the publish are
// mirrored into the simulator's room, as LiveKit would see them.

import assert from 'node:assert/strict';
import { SIM, json } from './lib.mjs';

/** The LiveKit token's claims (room, identity): the fake join mirrors them into the simulator. */
export function claims(token) {
  return JSON.parse(Buffer.from(token.split('.')[1], 'base64url').toString('utf8'));
}

/**
 * Wires the fake Room into page `p`: `p.seq` records, in order, the fake Room's
 * completed steps and the page's /api/c2c requests; `p.responses` the JSON answers.
 * Call after navigation (C2C must be loaded).
 */
export async function withFakeRoom(p) {
  p.seq = [];
  p.responses = [];
  p.sdkLoads = 0;
  p.on('request', (q) => { if (new URL(q.url()).pathname === '/js/livekit-client.js') p.sdkLoads += 1; });
  await p.exposeFunction('__fakeRoom', async (step, detail) => {
    if (step === 'connect.done') {
      const c = claims(detail.token);
      p.agent = { room: c.video.room, identity: c.sub };
      // Joined without a microphone yet: the gateway's /connect refuses until it is published.
      const r = await json(`${SIM}/sim/rooms/${c.video.room}/join`, {
        method: 'POST', headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify({ identity: c.sub, publish_audio: false }),
      });
      assert.ok(r.status < 300, `sim join: ${JSON.stringify(r.body)}`);
    }
    if (step === 'mic.published' && detail && detail.enabled && p.agent) {
      const r = await json(`${SIM}/sim/rooms/${p.agent.room}/publish`, {
        method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ identity: p.agent.identity }),
      });
      assert.ok(r.status < 300, `sim publish: ${JSON.stringify(r.body)}`);
    }
    p.seq.push({ what: `room:${step}`, at: Date.now(), detail });
  });
  p.on('request', (q) => {
    if (q.url().includes('/api/c2c/calls/') && q.method() === 'POST') {
      p.seq.push({ what: `POST ${new URL(q.url()).pathname.split('/').pop()}`, at: Date.now(), body: q.postData() });
    }
  });
  p.on('response', async (r) => {
    if (r.url().includes('/api/c2c/calls/') && r.request().method() === 'POST') {
      p.responses.push({ action: new URL(r.url()).pathname.split('/').pop(), status: r.status(), body: await r.json().catch(() => null) });
    }
  });
  await p.evaluate(installFakeRoom);
}

/** Installs `window.FakeRoom` and points C2C at it; returns nothing. */
export function installFakeRoom() {
  // livekit-client's names and values, written out: C2C does not load the SDK for a
  // stand-in Room (c2c-client.test.mjs checks these against the pinned SDK).
  const RoomEvent = {
    ParticipantConnected: 'participantConnected',
    ParticipantAttributesChanged: 'participantAttributesChanged',
    ParticipantDisconnected: 'participantDisconnected',
    Disconnected: 'disconnected',
  };
  const Track = { Kind: { Audio: 'audio' }, Source: { Microphone: 'microphone' } };
  const SIP_KIND = 3; // ParticipantKind.SIP
  const report = (step, detail) => window.__fakeRoom(step, detail === undefined ? null : detail);
  const pause = (ms) => new Promise((r) => setTimeout(r, ms));

  class FakeRoom {
    constructor() {
      this.handlers = new Map();
      this.remoteParticipants = new Map();
      this.calls = []; // every Room API call the client made, in order
      this.tokens = []; // refreshed LiveKit tokens, as updateToken received them
      this.connected = false;
      this.mic = { enabled: false, muted: false };
      const room = this;
      const micTrack = {
        kind: Track.Kind.Audio,
        async mute() { room.calls.push('track.mute'); room.mic.muted = true; await report('mic.mute'); },
        async unmute() { room.calls.push('track.unmute'); room.mic.muted = false; await report('mic.unmute'); },
      };
      this.localParticipant = {
        async setMicrophoneEnabled(enabled, opts) {
          room.calls.push('setMicrophoneEnabled');
          await pause(150); // a real publish takes a while: /connect must still wait
          room.mic.enabled = !!enabled;
          await report('mic.published', { enabled: !!enabled, opts });
        },
        getTrackPublication(source) {
          room.calls.push(`getTrackPublication:${source}`);
          if (source !== Track.Source.Microphone || !room.mic.enabled) return undefined;
          return { source, track: micTrack };
        },
      };
    }

    on(event, fn) {
      if (!this.handlers.has(event)) this.handlers.set(event, []);
      this.handlers.get(event).push(fn);
      return this;
    }

    emit(event, ...args) {
      for (const fn of this.handlers.get(event) || []) fn(...args);
    }

    async connect(url, token, opts) {
      this.calls.push('connect');
      await pause(150);
      // The test adds the agent to the simulator's room, as LiveKit would on a join.
      await report('connect.done', { url, token, opts: opts || null });
      this.connected = true;
    }

    async disconnect() {
      this.calls.push('disconnect');
      if (!this.connected) return;
      this.connected = false;
      await report('disconnected');
      this.emit(RoomEvent.Disconnected);
    }

    /** The client hands over a refreshed token; a real Room keeps it for reconnects. */
    updateToken(token) {
      this.calls.push('updateToken');
      this.tokens.push(token);
      report('token.updated', { token });
    }

    /** The customer's SIP participant appears with `sip.callStatus` = status. */
    sipJoins(status) {
      const p = { identity: 'sip-customer', kind: SIP_KIND, attributes: { 'sip.callStatus': status } };
      this.remoteParticipants.set(p.identity, p);
      this.emit(RoomEvent.ParticipantConnected, p);
    }

    /** LiveKit SIP updates the participant's `sip.callStatus`. */
    sipStatus(status) {
      const p = this.remoteParticipants.get('sip-customer');
      p.attributes = { ...p.attributes, 'sip.callStatus': status };
      this.emit(RoomEvent.ParticipantAttributesChanged, { 'sip.callStatus': status }, p);
    }

    /** The customer hangs up: the SIP participant leaves the room. */
    sipLeaves() {
      const p = this.remoteParticipants.get('sip-customer');
      this.remoteParticipants.delete(p.identity);
      this.emit(RoomEvent.ParticipantDisconnected, p);
    }
  }

  FakeRoom.RoomEvent = RoomEvent;
  window.FakeRoom = FakeRoom;
  window.fakeRooms = [];
  window.C2C.configure({
    roomFactory: () => {
      const r = new FakeRoom();
      window.fakeRooms.push(r);
      return r;
    },
  });
}
