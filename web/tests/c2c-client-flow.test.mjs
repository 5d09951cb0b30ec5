// What /js/c2c-client.js does AFTER the agent joined, in headless Chromium, against the
// real gateway, its LiveKit simulator and the CRM sink — with only livekit-client's
// Room replaced (C2C.configure({ roomFactory }), see fake-room.mjs), because the
// simulator carries no WebRTC and a real Room never connects to it.
// The fake Room's join adds the agent to the simulator's room (as LiveKit would) and
// its microphone publish publishes the agent's audio track there (the gateway's
// /connect dials only once it sees it), the real gateway dials through the simulator, and the test plays LiveKit SIP's part in
// the browser: the SIP participant joins, its `sip.callStatus` moves dialing ->
// ringing -> active, then it leaves. The simulator's callee never answers (no_answer)
// and the ring timeout is long, so only the client's ANSWERED report can connect a
// call. Call ids whose CRM webhook the Rust harness must check are written to
// C2C_FLOW_OUT.
// The LiveKit token refresh runs against the real gateway's /token: the harness gives
// the tenant a short calls.token_ttl_seconds, so the refresh (30 s before expiry) comes
// seconds into the call; max_duration_seconds must outlast the token.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { BASE, SIM, env, launch, page, shot, json, click2call, until } from './lib.mjs';
import { claims, withFakeRoom } from './fake-room.mjs';

const CALLS_KEY = env('C2C_CALLS_KEY');
const CONSOLE_KEY = env('C2C_CONSOLE_KEY');
const HOST = `http://127.0.0.1:${Number(env('C2C_HOST_PORT'))}`;
const FLOW_OUT = env('C2C_FLOW_OUT');
const NEVER_ANSWERS = { ring_after_ms: 200, outcome: { kind: 'no_answer' } };
const flowOut = {};
let browser;
let server;

before(async () => {
  // The CRM's agent page, on its own origin: loads the client from the gateway.
  server = createServer((req, res) => {
    res.writeHead(200, { 'Content-Type': 'text/html; charset=utf-8' });
    res.end(`<!doctype html><html><head><meta charset="utf-8"><title>CRM agent</title>
<link rel="icon" href="data:,"><script src="${BASE}/js/c2c-client.js"></script></head>
<body><h1>CRM agent page (fake LiveKit Room)</h1></body></html>`);
  });
  await new Promise((r) => server.listen(Number(env('C2C_HOST_PORT')), '127.0.0.1', r));
  browser = await launch();
});
after(async () => {
  await browser?.close();
  server.closeAllConnections();
  await new Promise((r) => server.close(r));
  writeFileSync(FLOW_OUT, JSON.stringify(flowOut));
});

async function scenario(number, s) {
  const r = await json(`${SIM}/sim/scenarios`, {
    method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ number, scenario: s }),
  });
  assert.ok(r.status < 300, `scenario: ${JSON.stringify(r.body)}`);
}

const getCall = async (id) => (await json(`${BASE}/api/c2c/calls/${id}`)).body;

/** The CRM's agent page with the fake Room wired in. */
async function agentPage() {
  const p = await page(browser);
  await p.goto(`${HOST}/agent.html`);
  await p.waitForFunction(() => !!window.C2C);
  await withFakeRoom(p);
  await p.evaluate(() => {
    window.events = [];
    for (const e of ['state', 'joined', 'published', 'muted', 'token_refreshed', 'error', 'ended']) {
      C2C.on(e, (d) => window.events.push({ e, ...d }));
    }
  });
  return p;
}

const states = (p) => p.evaluate(() => window.events.filter((e) => e.e === 'state').map((e) => e.state));
const seqNames = (p) => p.seq.map((s) => s.what);

/** click2call (server side) + C2C.startCall in the page; resolves once startCall did. */
async function startCall(p, number, agentId) {
  await scenario(number, NEVER_ANSWERS);
  const res = await click2call(number, CALLS_KEY, agentId);
  const out = await p.evaluate(async (res) => {
    try {
      const r = await C2C.startCall(res);
      return { ok: true, callId: r.callId, sameRoom: r.room === window.fakeRooms.at(-1) };
    } catch (e) {
      return { ok: false, error: e.message };
    }
  }, res);
  assert.deepEqual(out, { ok: true, callId: res.call_id, sameRoom: true }, JSON.stringify(out));
  return res;
}

test('join and mic publish complete before /connect; the real gateway then dials through the simulator', async () => {
  const p = await agentPage();
  const res = await startCall(p, '9530252001');
  const names = seqNames(p);
  assert.deepEqual(names.slice(0, 3), ['room:connect.done', 'room:mic.published', 'POST connect'], names.join(', '));
  const at = Object.fromEntries(p.seq.map((s) => [s.what, s.at]));
  assert.ok(at['room:mic.published'] <= at['POST connect'], JSON.stringify(at));
  const join = p.seq[0].detail;
  assert.equal(join.url, res.ws_url, 'connect got the ws_url of /click2call');
  assert.equal(join.token, res.token);
  assert.equal(p.seq[1].detail.enabled, true);
  assert.deepEqual(p.seq[1].detail.opts, { echoCancellation: true, noiseSuppression: true, autoGainControl: true });
  const calls = await p.evaluate(() => window.fakeRooms[0].calls);
  assert.deepEqual(calls, ['connect', 'setMicrophoneEnabled'], 'the client used only the documented Room API');
  // A stand-in Room needs no LiveKit SDK: the client did not load it.
  assert.equal(p.sdkLoads, 0, '/js/livekit-client.js was not requested');
  assert.equal(await p.evaluate(() => typeof window.LivekitClient), 'undefined');
  assert.deepEqual(p.responses.find((r) => r.action === 'connect'), { action: 'connect', status: 200, body: { status: 'ringing' } });
  // The gateway dialled: the simulator's callee rings, the gateway's poller sees it.
  const ringing = await until('the gateway to see RINGING', 8000, async () => {
    const c = await getCall(res.call_id);
    return c.status === 'RINGING' && c;
  });
  assert.equal(ringing.connected, false);
  const parts = (await json(`${SIM}/sim/rooms/${res.room}/participants`)).body;
  const ids = (Array.isArray(parts) ? parts : parts.participants || []).map((x) => x.identity).sort();
  assert.deepEqual(ids, ['agent-42', 'sip-customer'], 'agent (fake join) and the dialled customer in the simulator room');
  assert.deepEqual(await states(p), ['joining', 'dialing', 'ringing']);
  await p.evaluate(() => C2C.endCall());
  const ended = await until('ENDED', 5000, async () => { const c = await getCall(res.call_id); return c.ended && c; });
  assert.equal(ended.call_status, 'NOT_ANSWERED');
  assert.deepEqual(p.errors, []);
  await p.context().close();
});

test('sip.callStatus active -> exactly one ANSWERED report, recorded by the gateway; states joining..active', async () => {
  const p = await agentPage();
  const res = await startCall(p, '9530252002');
  await p.evaluate(() => window.fakeRooms[0].sipJoins('dialing'));
  await p.evaluate(() => window.fakeRooms[0].sipStatus('ringing'));
  await until('the gateway to see RINGING', 8000, async () => (await getCall(res.call_id)).status === 'RINGING');
  // Before the report: the callee never answers in the simulator, so not connected.
  assert.equal((await getCall(res.call_id)).connected, false);
  await p.evaluate(() => window.fakeRooms[0].sipStatus('active'));
  const status = await until('the /status answer', 5000, async () => p.responses.find((r) => r.action === 'status'));
  // A repeated attribute update and a reconnect-style re-announce must not re-report.
  await p.evaluate(() => { const r = window.fakeRooms[0]; r.sipStatus('active'); r.emit(FakeRoom.RoomEvent.ParticipantConnected, r.remoteParticipants.get('sip-customer')); });
  await new Promise((r) => setTimeout(r, 500));
  const reports = p.seq.filter((s) => s.what === 'POST status');
  assert.equal(reports.length, 1, seqNames(p).join(', '));
  assert.deepEqual(JSON.parse(reports[0].body), { status: 'ANSWERED' });
  assert.equal(status.status, 200);
  assert.equal(status.body.status, 'ACTIVE', JSON.stringify(status.body));
  assert.equal(status.body.connected, true);
  const c = await getCall(res.call_id);
  assert.deepEqual([c.status, c.connected, c.ended, c.call_status], ['ACTIVE', true, false, null], JSON.stringify(c));
  assert.deepEqual(await states(p), ['joining', 'dialing', 'ringing', 'active']);
  assert.equal(await p.evaluate(() => C2C.state), 'active');
  await shot(p, 'client-flow-active');
  await p.evaluate(() => C2C.endCall());
  const ended = await until('ENDED', 5000, async () => { const x = await getCall(res.call_id); return x.ended && x; });
  assert.deepEqual([ended.call_status, ended.disconnect_reason], ['ANSWERED', 'agent_hangup']);
  assert.deepEqual(p.errors, []);
  await p.context().close();
});

test('setMuted toggles the local mic track and emits muted', async () => {
  const p = await agentPage();
  await startCall(p, '9530252003');
  await p.evaluate(() => { const r = window.fakeRooms[0]; r.sipJoins('ringing'); r.sipStatus('active'); });
  assert.equal(await p.evaluate(() => C2C.setMuted(true)), true);
  assert.deepEqual(await p.evaluate(() => window.fakeRooms[0].mic), { enabled: true, muted: true });
  assert.equal(await p.evaluate(() => C2C.setMuted(false)), false);
  assert.deepEqual(await p.evaluate(() => window.fakeRooms[0].mic), { enabled: true, muted: false });
  const muted = await p.evaluate(() => window.events.filter((e) => e.e === 'muted').map((e) => e.muted));
  assert.deepEqual(muted, [true, false]);
  const calls = await p.evaluate(() => window.fakeRooms[0].calls);
  assert.deepEqual(calls.filter((c) => c.startsWith('track.')), ['track.mute', 'track.unmute']);
  assert.ok(calls.includes('getTrackPublication:microphone'), calls.join(', '));
  await p.evaluate(() => C2C.endCall());
  assert.deepEqual(p.errors, []);
  await p.context().close();
});

test('customer drop: the SIP participant leaves -> hangup, ended, room left; gateway ENDED ANSWERED', async () => {
  const p = await agentPage();
  const res = await startCall(p, '9530252004');
  await p.evaluate(() => { const r = window.fakeRooms[0]; r.sipJoins('dialing'); r.sipStatus('ringing'); r.sipStatus('active'); });
  await until('ACTIVE', 5000, async () => (await getCall(res.call_id)).status === 'ACTIVE');
  await new Promise((r) => setTimeout(r, 1100)); // a call that lasted: duration >= 1 s
  await p.evaluate(() => window.fakeRooms[0].sipLeaves());
  const ended = await p.waitForFunction(() => window.events.find((e) => e.e === 'ended')).then((h) => h.jsonValue());
  assert.deepEqual(ended, { e: 'ended', callId: res.call_id, reason: 'customer_dropped', hangupSent: true });
  const names = seqNames(p);
  assert.equal(names.filter((n) => n === 'POST hangup').length, 1, names.join(', '));
  assert.ok(names.indexOf('POST hangup') < names.indexOf('room:disconnected'), 'hangup first, then the room is left');
  assert.deepEqual(await p.evaluate(() => window.fakeRooms[0].calls.slice(-1)), ['disconnect']);
  assert.equal(await p.evaluate(() => window.fakeRooms[0].connected), false);
  const st = await states(p);
  assert.deepEqual(st, ['joining', 'dialing', 'ringing', 'active', 'ended']);
  assert.equal(await p.evaluate(() => window.events.filter((e) => e.e === 'state').at(-1).reason), 'customer_dropped');
  assert.equal(await p.evaluate(() => C2C.callId), null);
  const c = await until('ENDED', 5000, async () => { const x = await getCall(res.call_id); return x.ended && x; });
  assert.deepEqual([c.status, c.call_status, c.connected], ['ENDED', 'ANSWERED', true], JSON.stringify(c));
  assert.ok(c.duration_seconds >= 1, JSON.stringify(c));
  // The webhook the gateway sends for it (what the CRM sink must receive once).
  const v = await json(`${BASE}/api/c2c/console/calls/${res.call_id}`, { headers: { 'X-api-key': CONSOLE_KEY } });
  assert.equal(v.status, 200, JSON.stringify(v.body));
  const hook = JSON.parse(v.body.webhook.body_json);
  assert.deepEqual([hook.call_id, hook.call_status, hook.phone_to], [res.call_id, 'ANSWERED', '9530252004']);
  flowOut.customer_drop = res.call_id;
  await shot(p, 'client-flow-customer-drop');
  assert.deepEqual(p.errors, []);
  await p.context().close();
});

test('Sandbox with the fake Room: Initiated -> Ringing -> Active -> Ended and the ANSWERED webhook preview', async () => {
  const number = '9530252005';
  await scenario(number, NEVER_ANSWERS);
  const p = await page(browser);
  await p.goto(`${BASE}/console/`);
  await p.getByLabel('API key').fill(CONSOLE_KEY);
  await p.keyboard.press('Enter');
  await p.waitForSelector('#nav:not([hidden])');
  await p.waitForFunction(() => !!window.C2C);
  await withFakeRoom(p);
  await p.click('#nav a[data-view="sandbox"]');
  await p.waitForSelector('section[data-view="sandbox"] #view-title');
  const current = () => p.getAttribute('#sandbox-steps li.current', 'data-step');
  const reached = () => p.$$eval('#sandbox-steps li', (li) => li.filter((x) => x.className).map((x) => `${x.dataset.step}:${x.className}`));
  await p.fill('#sb-number', number);
  await p.click('#sb-place');
  await p.waitForSelector('#sandbox-steps li[data-step="Initiated"].current, #sandbox-steps li[data-step="Initiated"].done');
  await until('/connect sent', 8000, async () => p.seq.some((s) => s.what === 'POST connect'));
  assert.deepEqual(seqNames(p).slice(0, 3), ['room:connect.done', 'room:mic.published', 'POST connect']);
  const callId = await p.evaluate(() => C2C.callId);
  const seen = ['Initiated'];
  await p.waitForSelector('#sandbox-steps li[data-step="Ringing"].current');
  seen.push(await current());
  await p.evaluate(() => { const r = window.fakeRooms[0]; r.sipJoins('dialing'); r.sipStatus('ringing'); });
  await p.evaluate(() => window.fakeRooms[0].sipStatus('active'));
  await p.waitForSelector('#sandbox-steps li[data-step="Active"].current');
  seen.push(await current());
  await until('the gateway ACTIVE', 5000, async () => (await getCall(callId)).status === 'ACTIVE');
  await p.evaluate(() => window.fakeRooms[0].sipLeaves());
  await p.waitForSelector('#webhook-preview', { timeout: 10000 });
  seen.push(await current());
  assert.deepEqual(seen, ['Initiated', 'Ringing', 'Active', 'Ended']);
  assert.deepEqual(await reached(), ['Initiated:done', 'Ringing:done', 'Active:done', 'Ended:current']);
  const log = await p.$$eval('#sandbox-log li', (li) => li.map((x) => x.textContent.slice(9)).reverse());
  console.log('# sandbox (fake Room) log:', JSON.stringify(log));
  for (const s of ['joining', 'dialing', 'ringing', 'active', 'ended (customer_dropped)']) {
    assert.ok(log.includes(`client: ${s}`), `${s} in ${log.join(' | ')}`);
  }
  const preview = await p.textContent('#webhook-preview');
  const body = JSON.parse(preview.slice(preview.indexOf('{')));
  assert.deepEqual([body.call_id, body.call_status, body.phone_to, body.case_id], [callId, 'ANSWERED', number, 'sandbox']);
  assert.equal(await p.textContent('#sandbox-state'), 'State: Ended');
  assert.equal(p.seq.filter((s) => s.what === 'POST status').length, 1);
  flowOut.sandbox = callId;
  await shot(p, 'console-sandbox-fake-room-ended');
  assert.deepEqual(p.errors, []);
  await p.context().close();
});

// In the page: the tab's visibility as the browser would report it, with its event.
function setVisibility(state) {
  Object.defineProperty(document, 'visibilityState', { configurable: true, get: () => state });
  Object.defineProperty(document, 'hidden', { configurable: true, get: () => state === 'hidden' });
  document.dispatchEvent(new Event('visibilitychange'));
}

// In the page: moves the page's clock ahead by `ms`, as if a throttled background tab
// had slept through the scheduled refresh (timers already set keep their real delay).
function shiftClock(ms) {
  const real = Date.now.bind(Date);
  Date.now = () => real() + ms;
}

const tokenPosts = (p) => p.seq.filter((s) => s.what === 'POST token');
// The first /token answer (recorded a moment after the page saw it).
const tokenAnswer = (p) => until('the /token answer', 3000, async () => p.responses.find((r) => r.action === 'token'));

/** Answers the call (the SIP participant goes active) and waits for the gateway's ACTIVE. */
async function answer(p, callId) {
  await p.evaluate(() => { const r = window.fakeRooms[0]; r.sipJoins('dialing'); r.sipStatus('ringing'); r.sipStatus('active'); });
  await until('ACTIVE', 5000, async () => (await getCall(callId)).status === 'ACTIVE');
}

/** The refreshed token: the same room and identity, a later expiry than `old`. */
function assertSuccessor(fresh, old) {
  const a = claims(fresh);
  const b = claims(old);
  assert.notEqual(fresh, old);
  assert.deepEqual([a.sub, a.video.room], [b.sub, b.video.room]);
  assert.ok(a.exp > b.exp, `new exp ${a.exp} after old exp ${b.exp}`);
}

test('the LiveKit token is refreshed 30 s before it expires and handed to the room without reconnecting', async () => {
  const p = await agentPage();
  const res = await startCall(p, '9530252006', 'agent-refresh');
  const started = Date.now();
  const c = claims(res.token);
  const lifetime = c.exp - c.nbf;
  assert.ok(lifetime <= 90, `token lifetime ${lifetime} s: the harness must give the tenant a short calls.token_ttl_seconds`);
  const settings = (await json(`${BASE}/api/c2c/console/tenants/acme`, { headers: { 'X-api-key': CONSOLE_KEY } })).body.settings;
  assert.ok(settings.calls.max_duration_seconds > lifetime + 5,
    `max_duration_seconds ${settings.calls.max_duration_seconds} must outlast the token (${lifetime} s), or the call ends before its refresh`);
  await answer(p, res.call_id);
  const dueMs = Math.max(lifetime - 30, 5) * 1000;
  const refreshed = await until('token_refreshed', dueMs + 15000,
    () => p.evaluate(() => window.events.find((e) => e.e === 'token_refreshed')));
  const posts = tokenPosts(p);
  assert.ok(posts.length >= 1, 'POST /token');
  const after = posts[0].at - started;
  console.log(`# token refresh: lifetime ${lifetime} s, POST /token ${after} ms into the call (due ~${dueMs} ms)`);
  assert.ok(after >= dueMs - 3000 && after <= dueMs + 6000, `refreshed ${after} ms into the call, due ~${dueMs} ms`);
  const answer1 = await tokenAnswer(p);
  assert.equal(answer1.status, 200, JSON.stringify(answer1.body));
  assertSuccessor(answer1.body.token, res.token);
  assert.deepEqual(refreshed, { e: 'token_refreshed', callId: res.call_id, expiresAt: answer1.body.expires_at_ms });
  assert.ok(Number.isInteger(refreshed.expiresAt), "expiresAt is the answer's expires_at_ms");
  // Handed to the room in place: no second join, no disconnect, the call still up.
  const room = await p.evaluate(() => ({ tokens: window.fakeRooms[0].tokens, calls: window.fakeRooms[0].calls, connected: window.fakeRooms[0].connected }));
  assert.equal(room.tokens[0], answer1.body.token);
  assert.ok(p.seq.some((s) => s.what === 'room:token.updated' && s.detail.token === answer1.body.token));
  assert.deepEqual(room.calls.filter((x) => x === 'connect' || x === 'disconnect'), ['connect'], room.calls.join(', '));
  assert.equal(room.connected, true);
  assert.equal(await p.evaluate(() => C2C.state), 'active');
  assert.equal((await getCall(res.call_id)).status, 'ACTIVE');
  assert.equal(await p.evaluate(() => window.fakeRooms.length), 1);
  await shot(p, 'client-token-refreshed');
  // Once the call ended nothing refreshes any more, not even a tab coming back.
  await p.evaluate(() => C2C.endCall());
  await until('ENDED', 5000, async () => (await getCall(res.call_id)).ended);
  const before = tokenPosts(p).length;
  await p.evaluate(shiftClock, lifetime * 1000);
  await p.evaluate(setVisibility, 'visible');
  await new Promise((r) => setTimeout(r, 1500));
  assert.equal(tokenPosts(p).length, before, 'no /token after the call ended');
  assert.deepEqual(await p.evaluate(() => window.events.filter((e) => e.e === 'error')), []);
  assert.deepEqual(p.errors, []);
  await p.context().close();
});

test('a tab that becomes visible with the token about to expire refreshes it at once', async () => {
  const p = await agentPage();
  const res = await startCall(p, '9530252007', 'agent-visible');
  const started = Date.now();
  const c = claims(res.token);
  const lifetimeMs = (c.exp - c.nbf) * 1000;
  await answer(p, res.call_id);
  // To the page the token now expires in 20 s: inside the 30 s refresh window, while
  // the refresh timer (lifetime - 30 s after the start) has not fired.
  await p.evaluate(shiftClock, lifetimeMs - 20000);
  await p.evaluate(setVisibility, 'hidden');
  await new Promise((r) => setTimeout(r, 500));
  assert.equal(tokenPosts(p).length, 0, 'a tab going hidden does not refresh');
  const shown = Date.now();
  await p.evaluate(setVisibility, 'visible');
  await until('POST /token', 3000, async () => tokenPosts(p).length > 0);
  const post = tokenPosts(p)[0];
  assert.ok(post.at - shown < 2000, `refreshed ${post.at - shown} ms after the tab became visible`);
  assert.ok(post.at - started < Math.max(lifetimeMs - 30000, 5000), 'before the scheduled refresh could have fired');
  const refreshed = await until('token_refreshed', 3000, () => p.evaluate(() => window.events.find((e) => e.e === 'token_refreshed')));
  const got = await tokenAnswer(p);
  assert.equal(got.status, 200, JSON.stringify(got.body));
  assertSuccessor(got.body.token, res.token);
  assert.equal(refreshed.expiresAt, got.body.expires_at_ms);
  assert.deepEqual(await p.evaluate(() => window.fakeRooms[0].tokens), [got.body.token]);
  assert.equal(await p.evaluate(() => C2C.state), 'active');
  assert.equal((await getCall(res.call_id)).status, 'ACTIVE');
  await p.evaluate(() => C2C.endCall());
  await until('ENDED', 5000, async () => (await getCall(res.call_id)).ended);
  assert.deepEqual(p.errors, []);
  await p.context().close();
});

test('a click2call the DLT rules refused shows the agent why, before any dial', async () => {
  const p = await agentPage();
  // A real refusal from the gateway: a caller ID the tenant never registered.
  const r = await json(`${BASE}/api/c2c/click2call`, {
    method: 'POST',
    headers: { 'X-api-key': CALLS_KEY, 'Content-Type': 'application/json' },
    body: JSON.stringify({ case_id: 'case-dlt', customer_number: '9530252099', agent_id: 'agent-dlt', customer_crm_id: 'cust-1', did: '+919876500000' }),
  });
  assert.equal(r.status, 422, JSON.stringify(r.body));
  assert.equal(r.body.error.code, 'caller_id_series');
  // And the body a tenant whose outbound calling is not yet enabled gets.
  const pending = { error: { code: 'dlt_pending', message: "outbound calling is disabled for tenant 'acme': its DLT Principal Entity binding has not been verified yet" } };
  const out = await p.evaluate(async ([refused, pending]) => {
    const got = [];
    for (const body of [refused, pending]) {
      try {
        await C2C.startCall(body);
        got.push({ ok: true });
      } catch (e) {
        got.push({ code: e.code, message: e.message });
      }
    }
    return { got, state: C2C.state, dltStates: C2C.DLT_STATES };
  }, [r.body, pending]);
  assert.deepEqual(out.got, [
    { code: 'caller_id_series', message: r.body.error.message },
    { code: 'dlt_pending', message: pending.error.message },
  ]);
  assert.deepEqual(out.dltStates, ['dlt_pending', 'dlt_refused']);
  assert.equal(out.state, 'idle', 'no call was started');
  const events = await p.evaluate(() => window.events.filter((e) => e.e === 'state'));
  assert.deepEqual(events.map((e) => [e.state, e.code, e.callId]), [
    ['dlt_refused', 'caller_id_series', null],
    ['dlt_pending', 'dlt_pending', null],
  ]);
  assert.match(events[1].message, /Principal Entity/);
  // Nothing reached the gateway's call endpoints, nor the LiveKit SDK.
  assert.deepEqual(seqNames(p), []);
  assert.equal(p.sdkLoads, 0);
  await p.context().close();
});
