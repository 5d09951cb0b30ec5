// /js/c2c-client.js in headless Chromium, on a CRM page of ANOTHER origin (as agents
// use it), against the real gateway and the LiveKit simulator behind it.
//
// The client is small; the pinned livekit-client (/js/livekit-client.js, which defines
// window.LivekitClient) is loaded on demand, when a call starts.
//
// How far the simulator lets a real livekit-client get (measured here, asserted):
// the /rtc WebSocket opens THROUGH THE GATEWAY (token verified by the edge), the
// simulator sends SignalResponse{join} and the agent appears in the room; the
// simulator has no SDP/ICE/media, so the client's peer connection never connects and
// Room.connect rejects after peerConnectionTimeout. The client must then NOT dial
// (/connect is never sent: the hard rule), report the error, and hang up.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { readFileSync } from 'node:fs';
import { BASE, SIM, env, launch, page, shot, json, click2call, until } from './lib.mjs';

const CALLS_KEY = env('C2C_CALLS_KEY');
const HOST_PORT = Number(env('C2C_HOST_PORT'));
const HOST = `http://127.0.0.1:${HOST_PORT}`;
let browser;
let server;

/** /hangup requests in the gateway's access log so far. */
function hangups() {
  return (readFileSync(env('C2C_GATEWAY_LOG'), 'utf8').match(/"call_hangup"/g) || []).length;
}

before(async () => {
  // The CRM's agent page: loads the client from the gateway, nothing else.
  server = createServer((req, res) => {
    res.writeHead(200, { 'Content-Type': 'text/html; charset=utf-8' });
    res.end(`<!doctype html><html><head><meta charset="utf-8"><title>CRM agent</title>
<link rel="icon" href="data:,"><script src="${BASE}/js/c2c-client.js"></script></head>
<body><h1>CRM agent page</h1></body></html>`);
  });
  await new Promise((r) => server.listen(HOST_PORT, '127.0.0.1', r));
  browser = await launch();
});

after(async () => {
  await browser?.close();
  await new Promise((r) => server.close(r));
});

test('the client is served from the gateway with content type, ETag and revalidation', async () => {
  const r = await json(`${BASE}/js/c2c-client.js`);
  assert.equal(r.status, 200);
  assert.match(r.headers.get('content-type'), /^text\/javascript/);
  assert.equal(r.headers.get('cache-control'), 'no-cache');
  assert.equal(r.headers.get('x-content-type-options'), 'nosniff');
  const tag = r.headers.get('etag');
  // node's fetch accepts gzip: the gzip body has its own strong tag.
  assert.match(tag, /^"[0-9a-f]{24}(-gz)?"$/);
  assert.equal(r.headers.get('vary'), 'Accept-Encoding');
  const again = await fetch(`${BASE}/js/c2c-client.js`, { headers: { 'If-None-Match': tag } });
  assert.equal(again.status, 304);
  // No third-party origin in the bundle's loading path: it is self-contained.
  assert.ok(!String(r.body).includes('cdn.jsdelivr.net'));
  // Small: the LiveKit SDK is a separate file, loaded when a call starts.
  assert.ok(String(r.body).length < 40000, `c2c-client.js is ${String(r.body).length} bytes`);
});

test('the LiveKit SDK is served apart, typed, revalidated and gzip-compressed', async () => {
  const r = await fetch(`${BASE}/js/livekit-client.js`, { headers: { 'Accept-Encoding': 'gzip' } });
  const body = await r.text(); // decompressed by fetch
  assert.equal(r.status, 200);
  assert.match(r.headers.get('content-type'), /^text\/javascript/);
  assert.equal(r.headers.get('content-encoding'), 'gzip');
  assert.equal(r.headers.get('x-content-type-options'), 'nosniff');
  assert.ok(body.includes('LivekitClient') && body.length > 200000, `${body.length} bytes`);
  const again = await fetch(`${BASE}/js/livekit-client.js`, { headers: { 'Accept-Encoding': 'gzip', 'If-None-Match': r.headers.get('etag') } });
  assert.equal(again.status, 304);
});

/** Loads the CRM page and records the page's requests and its /rtc WebSocket. */
async function agentPage() {
  const p = await page(browser);
  p.requests = [];
  p.sockets = [];
  p.on('request', (q) => p.requests.push({ method: q.method(), url: q.url(), type: q.resourceType(), at: Date.now() }));
  p.on('websocket', (ws) => {
    const s = { url: ws.url(), opened: Date.now(), received: 0, sent: 0, closed: null };
    p.sockets.push(s);
    ws.on('framereceived', () => { s.received += 1; if (!s.firstFrame) s.firstFrame = Date.now(); });
    ws.on('framesent', () => { s.sent += 1; });
    ws.on('close', () => { s.closed = Date.now(); });
  });
  await p.goto(`${HOST}/agent.html`);
  await p.waitForFunction(() => !!window.C2C);
  return p;
}

const sdkRequests = (p) => p.requests.filter((q) => new URL(q.url).pathname === '/js/livekit-client.js');

test('the LiveKit SDK loads on demand, once for concurrent callers, and a failed load is retried', async () => {
  const p = await agentPage();
  assert.equal(sdkRequests(p).length, 0, 'not loaded with the page');
  assert.equal(await p.evaluate(() => typeof window.LivekitClient), 'undefined');
  const out = await p.evaluate(async () => {
    const [a, b] = await Promise.all([C2C.loadLivekit(), C2C.loadLivekit()]);
    return { same: a === b && a === window.LivekitClient, room: typeof a.Room, version: a.version };
  });
  assert.deepEqual({ same: out.same, room: out.room }, { same: true, room: 'function' });
  assert.equal(sdkRequests(p).length, 1, 'one load for two callers');
  assert.ok(sdkRequests(p)[0].url.startsWith(BASE), 'from the gateway');
  // The names c2c-client.js and fake-room.mjs write out, as the pinned SDK has them.
  const names = await p.evaluate(() => {
    const { RoomEvent, Track, ParticipantKind } = window.LivekitClient;
    return {
      events: [RoomEvent.TrackSubscribed, RoomEvent.ParticipantConnected, RoomEvent.ParticipantAttributesChanged,
        RoomEvent.ParticipantDisconnected, RoomEvent.Disconnected],
      audio: Track.Kind.Audio, microphone: Track.Source.Microphone, sip: ParticipantKind.SIP,
    };
  });
  assert.deepEqual(names, {
    events: ['trackSubscribed', 'participantConnected', 'participantAttributesChanged', 'participantDisconnected', 'disconnected'],
    audio: 'audio', microphone: 'microphone', sip: 3,
  });
  console.log(`# livekit-client ${out.version} loaded on demand`);
  await p.context().close();

  // A gateway that cannot be reached: a clear error, and the next call tries again.
  const q = await agentPage();
  const failed = await q.evaluate(async () => {
    C2C.configure({ base: 'http://127.0.0.1:9' });
    try {
      await C2C.loadLivekit();
      return 'loaded';
    } catch (e) {
      return e.message;
    }
  });
  assert.match(failed, /could not load the LiveKit SDK from http:\/\/127\.0\.0\.1:9\/js\/livekit-client\.js/);
  const retried = await q.evaluate(async (base) => {
    C2C.configure({ base });
    return typeof (await C2C.loadLivekit()).Room;
  }, BASE);
  assert.equal(retried, 'function');
  await q.context().close();
});

test('click2call -> join (+mic) -> connect only after join -> hangup', async () => {
  const p = await agentPage();
  assert.equal(sdkRequests(p).length, 0, 'the SDK is not loaded before a call');
  assert.equal(await p.evaluate(() => C2C.preGrantMic()), true, 'fake mic granted');
  assert.equal(await p.evaluate(() => C2C.base), BASE, 'base defaults to the script origin');
  const res = await click2call('9530251797', CALLS_KEY);
  assert.ok(res.ws_url.startsWith(BASE.replace('http', 'ws')), `ws_url is the gateway: ${res.ws_url}`);
  const started = Date.now();
  const run = p.evaluate(async (res) => {
    const events = [];
    for (const e of ['state', 'joined', 'published', 'error', 'ended']) C2C.on(e, (d) => events.push({ e, ...d, t: Date.now() }));
    try {
      await C2C.startCall(res, { connectOptions: { peerConnectionTimeout: 4000 } });
      return { ok: true, events };
    } catch (err) {
      return { ok: false, error: err.message, events };
    }
  }, res);
  // While the client is joining: the agent is a participant of the room in LiveKit.
  const seen = await until('the agent in the simulator room', 8000, async () => {
    const r = await json(`${SIM}/sim/rooms/${res.room}/participants`);
    const list = Array.isArray(r.body) ? r.body : (r.body && r.body.participants) || [];
    return list.find((x) => x.identity === 'agent-42');
  });
  const out = await run;
  const took = Date.now() - started;
  const sdk = sdkRequests(p);
  assert.equal(sdk.length, 1, 'startCall loaded the SDK once');
  assert.ok(sdk[0].at >= started, 'when the call started, not with the page');
  await shot(p, 'client-after-join-attempt');
  const rtc = p.sockets.filter((s) => new URL(s.url).pathname === '/rtc' || new URL(s.url).pathname.startsWith('/rtc/'));
  const report = {
    ws: rtc.map((s) => ({ path: new URL(s.url).pathname, framesReceived: s.received, framesSent: s.sent, firstFrameMs: s.firstFrame ? s.firstFrame - s.opened : null })),
    participant: { identity: seen.identity, state: seen.state },
    outcome: out.ok ? 'connected' : `rejected after ${took} ms: ${out.error}`,
    events: out.events.map((e) => `${e.e}${e.state ? ':' + e.state : ''}${e.stage ? ':' + e.stage : ''}${e.reason ? ':' + e.reason : ''}`),
    requests: p.requests.filter((q) => q.url.includes('/api/c2c/')).map((q) => `${q.method} ${new URL(q.url).pathname.replace(res.call_id, '{id}')}`),
  };
  console.log('# c2c-client vs simulator:', JSON.stringify(report));
  assert.ok(rtc.length >= 1 && rtc[0].url.startsWith(res.ws_url), 'signalling went to ws_url (the gateway)');
  assert.ok(rtc[0].received >= 1, 'the join response arrived over the gateway');
  assert.equal(out.ok, false, 'the simulator carries no media, so the peer connection cannot connect');
  const ev = report.events;
  assert.ok(ev.includes('state:joining') && ev.includes('error:join') && ev.includes('state:ended:join_failed'), ev.join(' '));
  assert.ok(!ev.includes('state:dialing'), 'never dialed');
  // The hard rule: /connect never sent because the room never connected; hangup was.
  assert.ok(!report.requests.some((r) => r.endsWith('/connect')), report.requests.join(', '));
  assert.ok(report.requests.includes('POST /api/c2c/calls/{id}/hangup'), report.requests.join(', '));
  const call = await until('the call ENDED', 5000, async () => {
    const r = await json(`${BASE}/api/c2c/calls/${res.call_id}`);
    return r.body.status === 'ENDED' && r.body;
  });
  assert.equal(call.connected, false);
  await p.context().close();
});

test('closing the tab mid-call sends the hangup beacon', async () => {
  const p = await agentPage();
  const res = await click2call('9530251798', CALLS_KEY);
  // Default peerConnectionTimeout (15 s): only the beacon can end the call quickly.
  p.evaluate((res) => { C2C.startCall(res).catch(() => {}); }, res);
  await until('the /rtc WebSocket', 8000, async () => p.sockets.some((s) => s.received > 0));
  assert.equal(await p.evaluate(() => C2C.callId), res.call_id);
  const before = (await json(`${BASE}/api/c2c/calls/${res.call_id}`)).body;
  assert.equal(before.status, 'INITIATED', JSON.stringify(before));
  const hangupsBefore = hangups();
  const left = Date.now();
  await p.goto('about:blank');
  const call = await until('the beacon hangup to end the call', 5000, async () => {
    const r = await json(`${BASE}/api/c2c/calls/${res.call_id}`);
    return r.body.status === 'ENDED' && r.body;
  });
  console.log(`# beacon: call ENDED ${Date.now() - left} ms after the tab navigated away (disconnect_reason ${call.disconnect_reason})`);
  // The gateway saw one more /hangup than before the tab left: the beacon. The access
  // log line is written as the response completes, which may be after the GET above.
  await until('the beacon /hangup in the access log', 3000, async () => hangups() > hangupsBefore).catch(() => {});
  assert.equal(hangups(), hangupsBefore + 1, 'the beacon reached /hangup');
  assert.equal(call.disconnect_reason, 'agent_cancelled');
  await p.context().close();
});
