// The inbound-call API of /js/c2c-client.js (docs/inbound.md, "Browser client") in
// headless Chromium, WITHOUT a gateway: this file serves the page, the client (bundled
// from web/src by esbuild, so it tests the sources) and a stand-in for the gateway's
// presence WebSocket and call endpoints, and drives the offers frame by frame; the
// LiveKit Room is fake-room.mjs's. What it proves: an offer reaches C2C.on('incoming')
// and the presence handle; accept sends the accept frame, waits for `accepted` and joins
// the room with its ws_url and token, mic published, and never POSTs /connect; a lead
// that comes later is an update; a cancelled, rejected or unknown offer fails accept at
// once with `offer_gone`; the gateway's refusal rejects with its code; an offer nobody
// answers is dropped after ring_ms; while the socket reconnects accept goes over HTTP.
//
// Standalone: from web/, `node --test tests/inbound-client.test.mjs` (CHROMIUM overrides
// /usr/bin/chromium). It needs no environment.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { createHash } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';
import { chromium } from 'playwright-core';
import { installFakeRoom } from './fake-room.mjs';

const WEB = fileURLToPath(new URL('..', import.meta.url));
const PRESENCE_TOKEN = 'pt1.test-presence-token';
let browser;
let server;
let base;
let clientJs;
const gw = { conns: [], posts: [], holdAuth: false, acceptAnswer: null };

// --- a stand-in for the gateway: the presence socket (RFC 6455, the subset a browser
// --- sends: unfragmented masked frames) and POST /api/c2c/calls/{id}/{action}.

function wsFrame(opcode, payload) {
  const len = payload.length;
  const head = len < 126 ? Buffer.from([0x80 | opcode, len]) : Buffer.from([0x80 | opcode, 126, len >> 8, len & 0xff]);
  return Buffer.concat([head, payload]);
}

/** One client frame from the front of `b`, or null until it is complete. */
function readFrame(b) {
  if (b.length < 2) return null;
  let len = b[1] & 0x7f;
  let off = 2;
  if (len === 126) {
    if (b.length < 4) return null;
    len = b.readUInt16BE(2);
    off = 4;
  }
  const mask = b.subarray(off, off + 4); // browsers always mask
  off += 4;
  if (b.length < off + len) return null;
  const data = Buffer.from(b.subarray(off, off + len)).map((x, i) => x ^ mask[i % 4]);
  return { opcode: b[0] & 0x0f, data: Buffer.from(data), used: off + len };
}

function presenceSocket(req, socket) {
  const key = createHash('sha1').update(`${req.headers['sec-websocket-key']}258EAFA5-E914-47DA-95CA-C5AB0DC85B11`).digest('base64');
  socket.write(`HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${key}\r\n\r\n`);
  const conn = {
    frames: [], // every JSON frame the client sent, in order
    closed: false,
    send(obj) { if (!conn.closed) socket.write(wsFrame(1, Buffer.from(JSON.stringify(obj)))); },
    close(code) {
      if (conn.closed) return;
      conn.closed = true;
      socket.end(wsFrame(8, Buffer.from([code >> 8, code & 0xff])));
    },
  };
  gw.conns.push(conn);
  let buf = Buffer.alloc(0);
  socket.on('data', (d) => {
    buf = Buffer.concat([buf, d]);
    for (let f = readFrame(buf); f; f = readFrame(buf)) {
      buf = buf.subarray(f.used);
      if (f.opcode === 8) conn.close(1000);
      if (f.opcode !== 1) continue;
      const frame = JSON.parse(f.data.toString('utf8'));
      conn.frames.push(frame);
      if (frame.type === 'auth' && !gw.holdAuth) {
        conn.send({
          type: 'ready', session_id: `s${gw.conns.length}`, agent_id: 'agent-7', supervisor: false, availability: 'offline',
          telephony_enabled: true, on_call: false, heartbeat_seconds: 15, grace_seconds: 20,
        });
      }
      if (frame.type === 'set_availability') {
        conn.pendingAvailability = frame.availability; // answered by the test
      }
    }
  });
  socket.on('close', () => { conn.closed = true; });
  socket.on('error', () => {});
}

async function onRequest(req, res) {
  const url = new URL(req.url, base);
  if (url.pathname === '/agent.html') {
    res.writeHead(200, { 'Content-Type': 'text/html; charset=utf-8' });
    res.end('<!doctype html><html><head><meta charset="utf-8"><title>CRM agent</title><link rel="icon" href="data:,">'
      + '<script src="/js/c2c-client.js"></script></head><body><h1>CRM agent page (fake gateway)</h1></body></html>');
    return;
  }
  if (url.pathname === '/js/c2c-client.js') {
    res.writeHead(200, { 'Content-Type': 'text/javascript; charset=utf-8' });
    res.end(clientJs);
    return;
  }
  const m = url.pathname.match(/^\/api\/c2c\/calls\/([^/]+)\/([a-z]+)$/);
  if (m && req.method === 'POST') {
    let body = '';
    for await (const chunk of req) body += chunk;
    const [, id, action] = m;
    gw.posts.push({ id: decodeURIComponent(id), action, auth: req.headers.authorization || null, body });
    const [status, answer] = action === 'accept' && gw.acceptAnswer ? gw.acceptAnswer(id) : [200, {}];
    res.writeHead(status, { 'Content-Type': 'application/json' });
    res.end(JSON.stringify(answer));
    return;
  }
  res.writeHead(404, { 'Content-Type': 'application/json' });
  res.end(JSON.stringify({ error: { code: 'not_found', message: url.pathname } }));
}

before(async () => {
  const out = await build({
    entryPoints: ['src/c2c-client.js'], absWorkingDir: WEB, bundle: true, format: 'iife', platform: 'browser',
    target: ['es2020'], write: false, logLevel: 'warning',
  });
  clientJs = out.outputFiles[0].text;
  server = createServer((req, res) => { onRequest(req, res).catch((e) => { res.writeHead(500); res.end(String(e)); }); });
  server.on('upgrade', (req, socket) => {
    if (new URL(req.url, 'http://x').pathname === '/api/c2c/agents/presence') presenceSocket(req, socket);
    else socket.destroy();
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  base = `http://127.0.0.1:${server.address().port}`;
  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--use-fake-ui-for-media-stream', '--use-fake-device-for-media-stream'],
  });
});

after(async () => {
  await browser?.close();
  server.closeAllConnections();
  await new Promise((r) => server.close(r));
});

// --- helpers

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function until(what, timeoutMs, f) {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await f();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(25);
  }
}

let n = 0;
/** A fresh call id of the gateway's shape. */
const callId = () => `c2c_${createHash('md5').update(`call-${(n += 1)}-${Date.now()}`).digest('hex')}`;

/** A LiveKit-shaped JWT (unsigned: only its lifetime is read) that outlives the test. */
function livekitToken(room) {
  const now = Math.floor(Date.now() / 1000);
  const enc = (o) => Buffer.from(JSON.stringify(o)).toString('base64url');
  return `${enc({ alg: 'HS256', typ: 'JWT' })}.${enc({ sub: 'agent-7', video: { room }, nbf: now, exp: now + 3600 })}.sig`;
}

function offer(id, extra) {
  return { type: 'incoming', call_id: id, from: '+919812345678', to: '+918045678901', lead: null, ring_ms: 20000, at_ms: Date.now(), ...extra };
}

/**
 * The CRM's agent page with C2C loaded, the fake Room wired in, every C2C event and
 * the presence handle's offer events recorded, and a presence session open. Returns
 * the page, with `p.conn` the session's socket on the fake gateway and `p.seq` the fake
 * Room's steps.
 */
async function agentPage() {
  const p = await browser.newPage();
  p.errors = [];
  p.on('pageerror', (e) => p.errors.push(e.message));
  p.on('console', (m) => { if (m.type() === 'error') p.errors.push(m.text()); });
  await p.goto(`${base}/agent.html`);
  await p.waitForFunction(() => !!window.C2C);
  p.seq = [];
  await p.exposeFunction('__fakeRoom', (step, detail) => { p.seq.push({ step, detail }); });
  await p.evaluate(installFakeRoom);
  const before = gw.conns.length;
  await p.evaluate(async (token) => {
    window.events = [];
    window.handleEvents = [];
    for (const e of ['state', 'joined', 'published', 'ended', 'error', 'incoming', 'incoming_update', 'incoming_cancelled']) {
      C2C.on(e, (d) => window.events.push({ e, ...d }));
    }
    window.presence = await C2C.presence.connect({ token });
    for (const e of ['incoming', 'incoming_update', 'incoming_cancelled', 'error']) {
      window.presence.on(e, (d) => window.handleEvents.push({ e, ...d }));
    }
  }, PRESENCE_TOKEN);
  p.conn = gw.conns[before];
  assert.ok(p.conn, 'the page opened a presence socket');
  assert.deepEqual(p.conn.frames[0], { type: 'auth', token: PRESENCE_TOKEN });
  return p;
}

const events = (p, e) => p.evaluate((e) => window.events.filter((x) => x.e === e), e);
const postsFor = (id) => gw.posts.filter((x) => x.id === id).map((x) => x.action);

/** Runs C2C.accept in the page without awaiting it; `settled(p)` reads its outcome. */
const startAccept = (p, id) => p.evaluate((id) => {
  window.acceptOutcome = null;
  C2C.accept(id).then(
    (r) => { window.acceptOutcome = { ok: true, callId: r.callId, sameRoom: r.room === window.fakeRooms.at(-1) }; },
    (e) => { window.acceptOutcome = { ok: false, name: e.name, code: e.code, message: e.message }; },
  );
}, id);
const settled = (p) => until('accept to settle', 12000, () => p.evaluate(() => window.acceptOutcome));
const acceptNow = (p, id) => p.evaluate((id) => C2C.accept(id).then(
  () => ({ ok: true }),
  (e) => ({ ok: false, name: e.name, code: e.code, message: e.message }),
), id);

// --- tests

test('incoming -> accept: the accept frame, then the room of `accepted` joined with its token, mic published, no /connect', async () => {
  const p = await agentPage();
  const id = callId();
  const lead = { id: 'lead-9', name: 'Ravi Kumar', tags: ['vip'] };
  p.conn.send(offer(id, { lead }));
  const incoming = await until('incoming', 3000, async () => (await events(p, 'incoming'))[0]);
  assert.deepEqual(
    { ...incoming, at: typeof incoming.at },
    { e: 'incoming', call_id: id, callId: id, from: '+919812345678', to: '+918045678901', lead, ringMs: 20000, at: 'string' },
  );
  // The presence handle reports it as well, and both list it as open.
  assert.deepEqual(await p.evaluate(() => window.handleEvents.map((x) => [x.e, x.call_id])), [['incoming', id]]);
  assert.deepEqual(await p.evaluate(() => C2C.offers.map((o) => o.call_id)), [id]);

  await startAccept(p, id);
  await until('the accept frame', 3000, () => p.conn.frames.some((f) => f.type === 'accept'));
  assert.deepEqual(p.conn.frames.filter((f) => f.type === 'accept'), [{ type: 'accept', call_id: id }]);
  // Nothing is joined before the gateway answered.
  assert.equal(await p.evaluate(() => window.fakeRooms.length), 0);
  const room = `c2c-${id.slice(4)}`;
  const token = livekitToken(room);
  p.conn.send({ type: 'accepted', call_id: id, room, ws_url: 'wss://livekit.example.test', token });
  assert.deepEqual(await settled(p), { ok: true, callId: id, sameRoom: true });

  const join = p.seq.find((s) => s.step === 'connect.done');
  assert.deepEqual([join.detail.url, join.detail.token], ['wss://livekit.example.test', token]);
  assert.deepEqual(p.seq.map((s) => s.step), ['connect.done', 'mic.published']);
  assert.deepEqual(p.seq[1].detail, { enabled: true, opts: { echoCancellation: true, noiseSuppression: true, autoGainControl: true } });
  assert.deepEqual(await p.evaluate(() => window.fakeRooms[0].calls), ['connect', 'setMicrophoneEnabled']);
  assert.deepEqual(postsFor(id), [], 'no /connect: the gateway forwards the caller itself');
  assert.deepEqual(await p.evaluate(() => [C2C.state, C2C.callId, C2C.direction, C2C.offers.length]), ['ringing', id, 'inbound', 0]);

  // A second offer while on this call cannot be accepted: no frame goes out for it.
  const other = callId();
  p.conn.send(offer(other));
  await until('the second incoming', 3000, async () => (await events(p, 'incoming')).length === 2);
  const busy = await acceptNow(p, other);
  assert.deepEqual([busy.ok, busy.code], [false, 'call_in_progress'], JSON.stringify(busy));
  assert.ok(!p.conn.frames.some((f) => f.call_id === other), 'no accept frame for it');

  // LiveKit bridges the caller: the SIP participant turns active, as for outbound.
  await p.evaluate(() => { const r = window.fakeRooms[0]; r.sipJoins('ringing'); r.sipStatus('active'); });
  await until('active', 3000, async () => (await p.evaluate(() => C2C.state)) === 'active');
  await p.evaluate(() => C2C.endCall());
  assert.deepEqual(postsFor(id), ['status', 'hangup'], 'ANSWERED reported once, hangup as for outbound');
  assert.equal(JSON.parse(gw.posts.find((x) => x.id === id && x.action === 'status').body).status, 'ANSWERED');
  assert.deepEqual((await events(p, 'state')).map((s) => s.state), ['joining', 'ringing', 'active', 'ended']);
  assert.deepEqual((await events(p, 'ended'))[0], { e: 'ended', callId: id, reason: 'agent_hangup', hangupSent: true });
  assert.deepEqual(p.errors, []);
  await p.close();
});

test('incoming without a lead, then incoming_update: the lead arrives as an update of the open offer', async () => {
  const p = await agentPage();
  const id = callId();
  p.conn.send(offer(id));
  await until('incoming', 3000, async () => (await events(p, 'incoming')).length === 1);
  assert.equal((await events(p, 'incoming'))[0].lead, null);
  const lead = { id: 'lead-1', name: 'Asha', score: 0.9, nested: { city: 'Pune' } };
  p.conn.send({ type: 'incoming_update', call_id: id, lead });
  // An update for an offer this page does not hold is nobody's business.
  p.conn.send({ type: 'incoming_update', call_id: callId(), lead: { id: 'x' } });
  const upd = await until('incoming_update', 3000, async () => (await events(p, 'incoming_update'))[0]);
  await sleep(100);
  assert.deepEqual(await events(p, 'incoming_update'), [{ e: 'incoming_update', call_id: id, callId: id, lead }]);
  assert.deepEqual(upd.lead, lead);
  assert.deepEqual(await p.evaluate(() => C2C.offers.map((o) => [o.call_id, o.lead])), [[id, lead]]);
  // The same offer repeated (e.g. after a resume) is not a second card.
  p.conn.send(offer(id, { lead }));
  await sleep(150);
  assert.equal((await events(p, 'incoming')).length, 1);
  assert.equal((await events(p, 'incoming_update')).length, 1);
  assert.deepEqual(p.errors, []);
  await p.close();
});

test('incoming_cancelled closes the offer: accept then fails offer_gone at once, with no frame; so does an unknown call', async () => {
  const p = await agentPage();
  const id = callId();
  p.conn.send(offer(id));
  await until('incoming', 3000, async () => (await events(p, 'incoming')).length === 1);
  p.conn.send({ type: 'incoming_cancelled', call_id: id, reason: 'caller_hung_up' });
  const c = await until('incoming_cancelled', 3000, async () => (await events(p, 'incoming_cancelled'))[0]);
  assert.deepEqual(c, { e: 'incoming_cancelled', call_id: id, callId: id, reason: 'caller_hung_up' });
  assert.deepEqual(await p.evaluate(() => C2C.offers), []);
  const started = Date.now();
  const gone = await acceptNow(p, id);
  assert.deepEqual([gone.ok, gone.name, gone.code], [false, 'PresenceError', 'offer_gone'], JSON.stringify(gone));
  const never = await acceptNow(p, callId());
  assert.deepEqual([never.ok, never.code], [false, 'offer_gone']);
  assert.ok(Date.now() - started < 1000, 'no round trip');
  await sleep(100);
  assert.deepEqual(p.conn.frames.map((f) => f.type), ['auth'], 'nothing was sent for them');
  assert.equal(await p.evaluate(() => window.fakeRooms.length), 0);
  assert.equal(await p.evaluate(() => C2C.state), 'idle');

  // An offer open when the session ends for good is gone too.
  const last = callId();
  p.conn.send(offer(last));
  await until('incoming', 3000, async () => (await events(p, 'incoming')).length === 2);
  await p.evaluate(() => window.presence.disconnect());
  assert.deepEqual((await events(p, 'incoming_cancelled')).at(-1), { e: 'incoming_cancelled', call_id: last, callId: last, reason: 'session_closed' });
  assert.deepEqual(p.errors, []);
  await p.close();
});

test('reject sends the reject frame and closes the offer', async () => {
  const p = await agentPage();
  const id = callId();
  p.conn.send(offer(id));
  await until('incoming', 3000, async () => (await events(p, 'incoming')).length === 1);
  assert.equal(await p.evaluate((id) => C2C.reject(id).then(() => 'sent'), id), 'sent');
  await until('the reject frame', 3000, () => p.conn.frames.some((f) => f.type === 'reject'));
  assert.deepEqual(p.conn.frames.slice(1), [{ type: 'reject', call_id: id }]);
  assert.deepEqual(await p.evaluate(() => C2C.offers), []);
  assert.equal((await acceptNow(p, id)).code, 'offer_gone');
  const again = await p.evaluate((id) => C2C.reject(id).catch((e) => e.code), id);
  assert.equal(again, 'offer_gone');
  // The handle's own accept/reject work the same (C2C's are this session's).
  const other = callId();
  p.conn.send(offer(other));
  await until('incoming', 3000, async () => (await events(p, 'incoming')).length === 2);
  await p.evaluate((id) => window.presence.reject(id), other);
  await until('the second reject frame', 3000, () => p.conn.frames.length === 3);
  assert.deepEqual(p.conn.frames[2], { type: 'reject', call_id: other });
  // The gateway's word on a reject it could not honour is an 'error' event naming the call.
  p.conn.send({ type: 'error', code: 'not_offered', call_id: other, message: 'no such offer' });
  const err = await until('error event', 3000, () => p.evaluate(() => window.handleEvents.find((x) => x.e === 'error')));
  assert.deepEqual(err, { e: 'error', code: 'not_offered', message: 'no such offer', callId: other });
  assert.deepEqual(p.errors, []);
  await p.close();
});

test("the gateway's error for an accept rejects it with its code; the offer is gone; availability answers are not confused", async () => {
  const p = await agentPage();
  const id = callId();
  p.conn.send(offer(id));
  await until('incoming', 3000, async () => (await events(p, 'incoming')).length === 1);
  // A set_availability waits for its answer while the accept is refused.
  await p.evaluate(() => {
    window.avail = null;
    window.presence.setAvailability('available').then((d) => { window.avail = d.availability; }, (e) => { window.avail = `error:${e.code}`; });
  });
  await startAccept(p, id);
  await until('the accept frame', 3000, () => p.conn.frames.some((f) => f.type === 'accept'));
  p.conn.send({ type: 'error', code: 'offer_gone', call_id: id, message: 'answered elsewhere' });
  const out = await settled(p);
  assert.deepEqual(out, { ok: false, name: 'PresenceError', code: 'offer_gone', message: 'answered elsewhere' });
  assert.equal(await p.evaluate(() => window.avail), null, 'the call error did not answer set_availability');
  p.conn.send({ type: 'availability', agent_id: 'agent-7', availability: 'available', on_call: false, reason: 'set', at_ms: Date.now() });
  assert.equal(await until('set_availability', 3000, () => p.evaluate(() => window.avail)), 'available');
  assert.equal(await p.evaluate(() => window.fakeRooms.length), 0, 'no room joined');
  assert.deepEqual(await p.evaluate(() => [C2C.state, C2C.offers.length]), ['idle', 0]);
  assert.equal((await acceptNow(p, id)).code, 'offer_gone');
  assert.deepEqual(postsFor(id), []);
  assert.deepEqual(p.errors, []);
  await p.close();
});

test('an offer nobody answers is dropped by the client after ring_ms (the cancel may have been lost)', async () => {
  const p = await agentPage();
  const id = callId();
  const at = Date.now();
  p.conn.send(offer(id, { ring_ms: 300 }));
  const c = await until('incoming_cancelled', 5000, async () => (await events(p, 'incoming_cancelled'))[0]);
  const took = Date.now() - at;
  assert.deepEqual(c, { e: 'incoming_cancelled', call_id: id, callId: id, reason: 'expired' });
  assert.ok(took >= 2000 && took < 4000, `dropped after ${took} ms (ring_ms 300 + 2 s slack)`);
  assert.equal((await acceptNow(p, id)).code, 'offer_gone');
  // The gateway's own cancel after that changes nothing.
  p.conn.send({ type: 'incoming_cancelled', call_id: id, reason: 'offer_timeout' });
  await sleep(100);
  assert.equal((await events(p, 'incoming_cancelled')).length, 1);
  assert.deepEqual(p.errors, []);
  await p.close();
});

test('while the socket reconnects, accept goes over HTTP with the presence token as Bearer; its error shape maps to the code', async () => {
  const p = await agentPage();
  const ok = callId();
  const refused = callId();
  p.conn.send(offer(ok));
  p.conn.send(offer(refused));
  await until('incoming', 3000, async () => (await events(p, 'incoming')).length === 2);
  const room = `c2c-${ok.slice(4)}`;
  const token = livekitToken(room);
  gw.acceptAnswer = (id) => (id === ok
    ? [200, { call_id: ok, room, ws_url: 'wss://lk-http.example.test', token }]
    : [409, { error: { code: 'offer_gone', message: 'the caller hung up' } }]);
  gw.holdAuth = true; // the reconnect gets no `ready`: the session stays reconnecting
  try {
    p.conn.close(1001);
    await until('reconnecting', 5000, () => p.evaluate(() => window.presence.state === 'reconnecting'));
    const no = await acceptNow(p, refused);
    assert.deepEqual([no.ok, no.code, no.message], [false, 'offer_gone', 'the caller hung up']);
    await startAccept(p, ok);
    assert.deepEqual(await settled(p), { ok: true, callId: ok, sameRoom: true });
  } finally {
    gw.holdAuth = false;
    gw.acceptAnswer = null;
  }
  const accepts = gw.posts.filter((x) => x.action === 'accept');
  assert.deepEqual(accepts.map((x) => [x.id, x.auth]), [[refused, `Bearer ${PRESENCE_TOKEN}`], [ok, `Bearer ${PRESENCE_TOKEN}`]]);
  const join = p.seq.find((s) => s.step === 'connect.done');
  assert.deepEqual([join.detail.url, join.detail.token], ['wss://lk-http.example.test', token]);
  assert.deepEqual(postsFor(ok), ['accept'], 'no /connect');
  assert.ok(!p.conn.frames.some((f) => f.type === 'accept'), 'nothing went over the dropped socket');
  await p.evaluate(() => C2C.endCall());
  assert.deepEqual(postsFor(ok), ['accept', 'hangup']);
  // Chromium logs the 409 this test asked for; nothing else may be logged.
  assert.deepEqual(p.errors, ['Failed to load resource: the server responded with a status of 409 (Conflict)']);
  await p.close();
});

test('a socket that drops while an accept waits for its answer fails it `disconnected`; the offer stays open to accept again', async () => {
  const p = await agentPage();
  const id = callId();
  p.conn.send(offer(id));
  await until('incoming', 3000, async () => (await events(p, 'incoming')).length === 1);
  gw.holdAuth = true;
  try {
    await startAccept(p, id);
    await until('the accept frame', 3000, () => p.conn.frames.some((f) => f.type === 'accept'));
    p.conn.close(1001);
    const out = await settled(p);
    assert.deepEqual([out.ok, out.code], [false, 'disconnected'], JSON.stringify(out));
  } finally {
    gw.holdAuth = false;
  }
  assert.deepEqual(await p.evaluate(() => [C2C.state, C2C.offers.map((o) => o.call_id)]), ['idle', [id]]);
  assert.equal(await p.evaluate(() => window.fakeRooms.length), 0);
  assert.deepEqual(p.errors, []);
  await p.close();
});

test('outbound startCall after the refactor: join, mic, then POST /connect; a concurrent accept is refused', async () => {
  const p = await agentPage();
  const id = callId();
  const room = `c2c-${id.slice(4)}`;
  const res = { call_id: id, room, ws_url: 'wss://lk-out.example.test', token: livekitToken(room) };
  const out = await p.evaluate((res) => C2C.startCall(res).then((r) => ({ callId: r.callId, sameRoom: r.room === window.fakeRooms[0] })), res);
  assert.deepEqual(out, { callId: id, sameRoom: true });
  assert.deepEqual(p.seq.map((s) => s.step), ['connect.done', 'mic.published']);
  assert.deepEqual([p.seq[0].detail.url, p.seq[0].detail.token], [res.ws_url, res.token]);
  assert.deepEqual(postsFor(id), ['connect']);
  assert.deepEqual(await p.evaluate(() => [C2C.state, C2C.direction]), ['ringing', 'outbound']);
  const other = callId();
  p.conn.send(offer(other));
  await until('incoming', 3000, async () => (await events(p, 'incoming')).length === 1);
  assert.equal((await acceptNow(p, other)).code, 'call_in_progress');
  await p.evaluate(() => { const r = window.fakeRooms[0]; r.sipJoins('dialing'); r.sipStatus('active'); });
  await until('active', 3000, async () => (await p.evaluate(() => C2C.state)) === 'active');
  await p.evaluate(() => C2C.endCall());
  assert.deepEqual(postsFor(id), ['connect', 'status', 'hangup']);
  assert.deepEqual((await events(p, 'state')).map((s) => s.state), ['joining', 'dialing', 'ringing', 'active', 'ended']);
  assert.deepEqual(p.errors, []);
  await p.close();
});
