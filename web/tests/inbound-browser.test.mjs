// Inbound calls (docs/inbound.md) with the agent in headless Chromium through
// /js/c2c-client.js, against the real gateway: sipp plays the carrier and dials the
// tenant's DID at the gateway's SIP edge, the bundled LiveKit simulator plays LiveKit SIP
// (it answers the caller only once the agent published audio in the accepted room), and
// this file plays the CRM: its agent page on another origin (loads the client from the
// gateway, mints the presence session through its own backend, renders an incoming card
// on C2C.on('incoming') with Accept and Reject), its lead lookup and its webhook receiver.
// The only stand-in is livekit-client's Room (fake-room.mjs, as in
// c2c-client-flow.test.mjs: the simulator carries no WebRTC): its join adds the agent to
// the simulator's room and its mic publish publishes there, and the test mirrors the
// simulator's SIP participant into it (LiveKit's part in the browser).
// Run by gateway/tests/inbound_browser.rs, which starts the gateway with the simulator
// speaking SIP and passes C2C_SIP_PORT (the edge) and C2C_SCENARIOS (sipp's scenarios).
// A second agent for the reject case is a plain presence WebSocket from node.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, request } from 'node:http';
import { createHash, randomBytes } from 'node:crypto';
import { spawn } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { mkdtempSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BASE, SIM, env, launch, page, shot, json, until } from './lib.mjs';
import { installFakeRoom } from './fake-room.mjs';

const CALLS_KEY = env('C2C_CALLS_KEY');
const OWNER_KEY = env('C2C_OWNER_KEY');
const CRM_KEY = env('C2C_CRM_KEY'); // the tenant's outbound key: on the lookup and the webhook
const HOST_PORT = Number(env('C2C_HOST_PORT'));
const SIP_PORT = Number(env('C2C_SIP_PORT'));
const SCENARIOS = env('C2C_SCENARIOS');
const HOST = `http://127.0.0.1:${HOST_PORT}`;
const PRESENCE_URL = `${BASE.replace(/^http/, 'ws')}/api/c2c/agents/presence`;
const DID = '+918045678901';
const CALLER = '+919812345678';
const LEAD = { lead_id: 'L-ib-7', name: 'Asha Verma', stage: 'site visit booked' };

const minted = []; // every presence token minted here: none may appear in a URL
const seenUrls = []; // every URL a page requested, WebSockets included
const lookups = []; // the gateway's lead lookups, as the CRM got them
const webhooks = []; // the gateway's webhooks, as the CRM got them
const sippDir = mkdtempSync(join(tmpdir(), 'c2c-inbound-sipp-'));
const sipps = new Set();
let browser;
let server;

// --- the CRM: its backend (agent registration, presence sessions), its lead lookup,
// --- its webhook receiver, and the agent page.

const backend = { 'X-api-key': CALLS_KEY, 'Content-Type': 'application/json' };

/** Registers the agent with telephony on and mints its presence session (the CRM backend). */
async function presenceSession(agent) {
  const put = await json(`${BASE}/api/c2c/agents/${encodeURIComponent(agent)}`, {
    method: 'PUT', headers: backend, body: JSON.stringify({ name: agent, telephony_enabled: true }),
  });
  assert.ok(put.status === 200 || put.status === 201, `PUT agent ${agent}: ${put.status} ${JSON.stringify(put.body)}`);
  const s = await json(`${BASE}/api/c2c/agents/${encodeURIComponent(agent)}/session`, { method: 'POST', headers: backend, body: '{}' });
  assert.ok(s.status === 200 || s.status === 201, `session for ${agent}: ${s.status} ${JSON.stringify(s.body)}`);
  assert.equal(typeof s.body.token, 'string');
  minted.push(s.body.token);
  return s.body;
}

// The agent page: connects presence with a token from its own backend (never in a URL),
// goes available and renders one card per offer. State for the test is in window.crm.
function pageScript() {
  const crm = { ready: false, error: null, log: [] };
  window.crm = crm;
  const agent = new URLSearchParams(location.search).get('agent');
  const cards = document.getElementById('cards');
  const cardOf = (id) => cards.querySelector(`article[data-call-id="${id}"]`);
  const line = (el, cls, text) => {
    const p = document.createElement('p');
    p.className = cls;
    p.textContent = text;
    el.appendChild(p);
    return p;
  };
  async function fetchToken() {
    const r = await fetch('/crm/presence-session', {
      method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ agent }),
    });
    if (!r.ok) throw new Error(`presence session: ${r.status}`);
    return (await r.json()).token;
  }
  function showLead(el, lead) {
    el.querySelector('.lead').textContent = lead ? `${lead.name} (${lead.stage})` : 'Unknown caller';
  }
  async function acceptCall(id, el) {
    el.querySelectorAll('button').forEach((b) => { b.disabled = true; });
    el.querySelector('.status').textContent = 'Connecting…';
    try {
      const r = await C2C.accept(id);
      crm.log.push({ e: 'accepted', callId: r.callId });
      el.dataset.state = 'on-call';
      el.querySelector('.status').textContent = 'On call';
      el.querySelectorAll('button').forEach((b) => b.remove());
      const hang = document.createElement('button');
      hang.className = 'hangup';
      hang.textContent = 'Hang up';
      hang.onclick = () => C2C.endCall();
      el.appendChild(hang);
    } catch (e) {
      crm.log.push({ e: 'accept_failed', code: e.code, message: e.message });
      el.remove();
    }
  }
  C2C.on('incoming', (o) => {
    crm.log.push({ e: 'incoming', ...o });
    const el = document.createElement('article');
    el.className = 'card';
    el.dataset.callId = o.call_id;
    el.dataset.state = 'ringing';
    line(el, 'title', 'Incoming call');
    line(el, 'from', o.from);
    line(el, 'to', `to ${o.to}`);
    line(el, 'lead', '');
    showLead(el, o.lead);
    line(el, 'status', 'Ringing');
    const yes = document.createElement('button');
    yes.className = 'accept';
    yes.textContent = 'Accept';
    yes.onclick = () => acceptCall(o.call_id, el);
    const no = document.createElement('button');
    no.className = 'reject';
    no.textContent = 'Reject';
    no.onclick = () => C2C.reject(o.call_id).then(
      () => crm.log.push({ e: 'rejected', callId: o.call_id }),
      (e) => crm.log.push({ e: 'reject_failed', code: e.code }),
    ).finally(() => el.remove());
    el.append(yes, no);
    cards.appendChild(el);
  });
  C2C.on('incoming_update', (u) => {
    crm.log.push({ e: 'incoming_update', ...u });
    const el = cardOf(u.call_id);
    if (el) showLead(el, u.lead);
  });
  C2C.on('incoming_cancelled', (c) => {
    crm.log.push({ e: 'incoming_cancelled', ...c });
    const el = cardOf(c.call_id);
    if (el && el.dataset.state === 'ringing') el.remove();
  });
  C2C.on('state', (s) => {
    crm.log.push({ e: 'state', ...s });
    document.getElementById('call-state').textContent = s.state;
    if (s.state === 'ended') cardOf(s.callId)?.remove();
  });
  C2C.on('error', (d) => crm.log.push({ e: 'error', ...d }));
  (async () => {
    window.presence = await C2C.presence.connect({ token: await fetchToken(), fetchToken });
    await window.presence.setAvailability('available');
    document.getElementById('me').textContent = `${agent}: available`;
    crm.ready = true;
  })().catch((e) => { crm.error = `${e.code || ''} ${e.message}`; });
}

function agentHtml() {
  return `<!doctype html><html><head><meta charset="utf-8"><title>CRM agent</title>
<link rel="icon" href="data:,"><script src="${BASE}/js/c2c-client.js"></script>
<style>body{font:14px sans-serif}.card{border:1px solid #999;border-radius:6px;padding:8px 12px;margin:8px 0;max-width:320px}
.card .from{font-size:18px;font-weight:bold}.card button{margin-right:8px}</style></head>
<body><header><h1>CRM agent page</h1> <span id="me"></span> · call: <span id="call-state">idle</span></header>
<main id="cards" aria-live="polite"></main>
<script>(${pageScript.toString()})();</script></body></html>`;
}

async function body(req) {
  let s = '';
  for await (const chunk of req) s += chunk;
  return s;
}

async function crmRequest(req, res) {
  const url = new URL(req.url, HOST);
  const reply = (status, obj) => {
    res.writeHead(status, { 'Content-Type': 'application/json' });
    res.end(obj === undefined ? '' : JSON.stringify(obj));
  };
  if (req.method === 'GET' && url.pathname === '/agent.html') {
    res.writeHead(200, { 'Content-Type': 'text/html; charset=utf-8' });
    res.end(agentHtml());
  } else if (req.method === 'POST' && url.pathname === '/crm/presence-session') {
    const { agent } = JSON.parse(await body(req));
    reply(200, { token: (await presenceSession(agent)).token });
  } else if (req.method === 'POST' && url.pathname === '/crm/lead-lookup') {
    const b = JSON.parse(await body(req));
    lookups.push({ key: req.headers['x-api-key'], body: b });
    if (b.phone_from === CALLER) reply(200, LEAD);
    else reply(404, { error: 'no lead' });
  } else if (req.method === 'POST' && url.pathname === '/c2c/webhook') {
    const raw = await body(req);
    webhooks.push({ key: req.headers['x-api-key'], body: JSON.parse(raw) });
    reply(200, {});
  } else {
    reply(404, { error: url.pathname });
  }
}

before(async () => {
  server = createServer((req, res) => {
    crmRequest(req, res).catch((e) => { res.writeHead(500); res.end(String(e && e.stack)); });
  });
  await new Promise((r) => server.listen(HOST_PORT, '127.0.0.1', r));
  browser = await launch();
});

after(async () => {
  for (const c of sipps) c.kill('SIGKILL');
  await browser?.close();
  server.closeAllConnections();
  await new Promise((r) => server.close(r));
});

// --- the carrier: sipp, exactly as gateway/tests/inbound.rs runs it.

function freeUdpPort() {
  return new Promise((resolve, reject) => {
    const s = createSocket('udp4');
    s.on('error', reject);
    s.bind(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

let sippN = 0;
/** One call of `scenario` to the DID; `fill` replaces text in it. Resolves a handle. */
async function carrier(scenario, fill = {}) {
  let text = readFileSync(join(SCENARIOS, scenario), 'utf8');
  for (const [k, v] of Object.entries(fill)) text = text.replaceAll(k, v);
  const dir = mkdtempSync(join(sippDir, `${(sippN += 1)}-`));
  const file = join(dir, scenario);
  writeFileSync(file, text);
  const args = [`127.0.0.1:${SIP_PORT}`, '-sf', file, '-s', DID, '-i', '127.0.0.1', '-p', String(await freeUdpPort()),
    '-t', 'u1', '-nostdin', '-trace_err', '-timeout', '40', '-timeout_error', '-m', '1'];
  const child = spawn('sipp', args, { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] });
  sipps.add(child);
  let stderr = '';
  child.stderr.on('data', (d) => { stderr += d; });
  const exited = new Promise((resolve) => {
    child.on('error', (e) => resolve({ code: null, error: `sipp did not start (apt-get install sip-tester): ${e.message}` }));
    child.on('exit', (code, signal) => resolve({ code, signal }));
  });
  return {
    /** Resolves once sipp passed its scenario; fails with its error log otherwise. */
    async ok(what, timeoutMs = 45000) {
      let timer;
      const late = new Promise((r) => { timer = setTimeout(() => r({ code: null, error: 'still running' }), timeoutMs); });
      const st = await Promise.race([exited, late]);
      clearTimeout(timer);
      sipps.delete(child);
      if (st.code !== 0) {
        child.kill('SIGKILL');
        const errs = readdirSync(dir).filter((f) => f.includes('errors')).map((f) => readFileSync(join(dir, f), 'utf8'));
        assert.fail(`carrier scenario ${what} failed: ${JSON.stringify(st)}\n${stderr}\n${errs.join('\n')}`);
      }
    },
  };
}

// --- a plain presence WebSocket from node (RFC 6455 client, the subset needed: text
// --- frames out, masked; text/ping/close in). Node 20 has no global WebSocket.

const WS_GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11';

function wsFrame(opcode, payload) {
  const mask = randomBytes(4);
  const len = payload.length;
  const head = len < 126 ? Buffer.from([0x80 | opcode, 0x80 | len]) : Buffer.from([0x80 | opcode, 0x80 | 126, len >> 8, len & 0xff]);
  return Buffer.concat([head, mask, Buffer.from(payload.map((b, i) => b ^ mask[i % 4]))]);
}

function openSocket(url) {
  return new Promise((resolve, reject) => {
    const u = new URL(url.replace(/^ws/, 'http'));
    const key = randomBytes(16).toString('base64');
    const req = request({
      host: u.hostname, port: u.port, path: u.pathname,
      headers: { Connection: 'Upgrade', Upgrade: 'websocket', 'Sec-WebSocket-Version': '13', 'Sec-WebSocket-Key': key },
    });
    req.on('response', (r) => reject(new Error(`presence: no upgrade (${r.statusCode})`)));
    req.on('error', reject);
    req.on('upgrade', (res, socket, head) => {
      if (res.headers['sec-websocket-accept'] !== createHash('sha1').update(key + WS_GUID).digest('base64')) {
        reject(new Error('presence: bad Sec-WebSocket-Accept'));
        return;
      }
      const ws = { frames: [], closed: false };
      ws.send = (obj) => socket.write(wsFrame(1, Buffer.from(JSON.stringify(obj))));
      ws.close = () => { if (!ws.closed) socket.end(wsFrame(8, Buffer.from([0x03, 0xe8]))); ws.closed = true; };
      /** The first frame of `type` (after any already matched by `after`), within `ms`. */
      ws.next = (type, ms = 15000, after = 0) => until(`a ${type} frame`, ms, async () => ws.frames.slice(after).find((f) => f.type === type));
      let buf = head;
      const parse = () => {
        for (;;) {
          if (buf.length < 2) return;
          let len = buf[1] & 0x7f;
          let off = 2;
          if (len === 126) { if (buf.length < 4) return; len = buf.readUInt16BE(2); off = 4; }
          if (len === 127) { if (buf.length < 10) return; len = Number(buf.readBigUInt64BE(2)); off = 10; }
          if (buf.length < off + len) return;
          const opcode = buf[0] & 0x0f;
          const data = buf.subarray(off, off + len);
          buf = buf.subarray(off + len);
          if (opcode === 1) ws.frames.push(JSON.parse(data.toString('utf8')));
          if (opcode === 9) socket.write(wsFrame(10, Buffer.from(data)));
          if (opcode === 8) { ws.closed = true; socket.end(); }
        }
      };
      socket.on('data', (d) => { buf = Buffer.concat([buf, d]); parse(); });
      socket.on('error', () => {});
      socket.on('close', () => { ws.closed = true; });
      parse();
      resolve(ws);
    });
    req.end();
  });
}

/** An agent's presence session from node: registered, authenticated, available. */
async function socketAgent(agent) {
  const s = await presenceSession(agent);
  const ws = await openSocket(PRESENCE_URL);
  ws.send({ type: 'auth', token: s.token });
  assert.equal((await ws.next('ready')).agent_id, agent);
  ws.send({ type: 'set_availability', availability: 'available' });
  await until('available', 5000, async () => ws.frames.find((f) => f.type === 'availability' && f.availability === 'available'));
  return ws;
}

// --- helpers

const getCall = async (id) => (await json(`${BASE}/api/c2c/calls/${id}`)).body;
const ownerCall = async (id) => (await json(`${BASE}/api/c2c/owner/calls/${id}`, { headers: { 'X-api-key': OWNER_KEY } })).body;
const getAgent = async (id) => (await json(`${BASE}/api/c2c/agents/${encodeURIComponent(id)}`, { headers: { 'X-api-key': CALLS_KEY } })).body;
const webhookFor = (id) => until(`the CRM webhook of ${id}`, 15000, async () => webhooks.find((w) => w.body.call_id === id));

function claims(token) {
  return JSON.parse(Buffer.from(token.split('.')[1], 'base64url').toString('utf8'));
}

async function simPost(path, b) {
  const r = await json(`${SIM}${path}`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(b) });
  assert.ok(r.status < 300, `${path}: ${r.status} ${JSON.stringify(r.body)}`);
}

async function simParticipants(room) {
  const b = (await json(`${SIM}/sim/rooms/${room}/participants`)).body;
  return Array.isArray(b) ? b : (b && b.participants) || [];
}
const isSipParticipant = (x) => x.kind === 'SIP' || x.kind === 3;
const simRooms = async () => (await json(`${SIM}/sim/rooms`)).body.map((r) => r.name);

/**
 * The CRM's agent page for `agent`, presence connected and available, with the fake
 * Room wired in: its join adds the agent to the simulator's room without audio, its
 * mic publish publishes there (only then does the simulator's SIP answer the caller).
 */
async function agentPage(agent) {
  const p = await page(browser);
  p.steps = [];
  p.posts = [];
  p.on('request', (q) => {
    seenUrls.push(q.url());
    if (q.method() === 'POST' && q.url().startsWith(`${BASE}/api/c2c/calls/`)) p.posts.push(new URL(q.url()).pathname.split('/').pop());
  });
  p.on('websocket', (ws) => seenUrls.push(ws.url()));
  p.answers = [];
  p.on('response', async (r) => {
    if (r.request().method() === 'POST' && r.url().startsWith(`${BASE}/api/c2c/calls/`)) {
      p.answers.push({ action: new URL(r.url()).pathname.split('/').pop(), status: r.status(), body: await r.json().catch(() => null) });
    }
  });
  await p.exposeFunction('__fakeRoom', async (step, detail) => {
    if (step === 'connect.done') {
      const c = claims(detail.token);
      p.joined = { room: c.video.room, identity: c.sub, url: detail.url };
      await simPost(`/sim/rooms/${c.video.room}/join`, { identity: c.sub, publish_audio: false });
      // Joined without audio yet: LiveKit SIP does not answer the caller before the mic.
      if (p.callId) p.joined.statusBeforeMic = (await getCall(p.callId)).status;
    }
    if (step === 'mic.published' && detail && detail.enabled && p.joined) {
      await simPost(`/sim/rooms/${p.joined.room}/publish`, { identity: p.joined.identity });
    }
    p.steps.push(step);
  });
  await p.goto(`${HOST}/agent.html?agent=${encodeURIComponent(agent)}`);
  await p.waitForFunction(() => window.crm && (window.crm.ready || window.crm.error), null, { timeout: 10000 });
  assert.equal(await p.evaluate(() => window.crm.error), null);
  await p.evaluate(installFakeRoom);
  assert.equal((await getAgent(agent)).availability, 'available');
  return p;
}

/** The page's agent goes offline (no later offer may reach it) and the page closes. */
async function closePage(p) {
  await p.evaluate(() => window.presence.setAvailability('offline').then(() => window.presence.disconnect()));
  await p.context().close();
}

const crmLog = (p, e) => p.evaluate((e) => window.crm.log.filter((x) => x.e === e), e);
const card = (p) => p.evaluate(() => {
  const el = document.querySelector('#cards article');
  if (!el) return null;
  const t = (c) => el.querySelector(c)?.textContent ?? null;
  return { callId: el.dataset.callId, state: el.dataset.state, from: t('.from'), to: t('.to'), lead: t('.lead'), status: t('.status') };
});
const states = async (p) => (await crmLog(p, 'state')).map((s) => s.state);

/** Waits for the page's incoming card and checks what the gateway told it. */
async function ringingCard(p) {
  await p.waitForSelector('#cards article[data-state="ringing"]', { timeout: 15000 });
  // The lead comes with the offer, or (a lookup slower than lead_wait_ms) as an update.
  await p.waitForFunction(() => document.querySelector('#cards article .lead').textContent !== 'Unknown caller', null, { timeout: 5000 });
  const c = await card(p);
  assert.deepEqual(
    { ...c, callId: typeof c.callId },
    { callId: 'string', state: 'ringing', from: CALLER, to: `to ${DID}`, lead: 'Asha Verma (site visit booked)', status: 'Ringing' },
  );
  const [inc] = await crmLog(p, 'incoming');
  assert.deepEqual([inc.call_id, inc.callId, inc.from, inc.to], [c.callId, c.callId, CALLER, DID]);
  const updates = await crmLog(p, 'incoming_update');
  assert.deepEqual(inc.lead ?? updates[0]?.lead, LEAD, JSON.stringify({ inc, updates }));
  assert.ok(inc.ringMs > 0 && inc.ringMs <= 20000, `ringMs ${inc.ringMs}`);
  assert.ok(!Number.isNaN(Date.parse(inc.at)), `at: ${inc.at}`);
  return c.callId;
}

// --- tests

test('a carrier call rings the agent page; Accept joins the room, the simulator answers, the call is ACTIVE, then ENDED ANSWERED with the inbound webhook', async () => {
  const agent = 'ib-asha';
  const p = await agentPage(agent);
  // The caller talks for 2.5 s once answered, then hangs up.
  const sipp = await carrier('inbound_answer.xml', { '<pause milliseconds="1500"/>': '<pause milliseconds="2500"/>' });
  const id = await ringingCard(p);
  const lookup = lookups.find((l) => l.body.call_id === id);
  assert.deepEqual(lookup, { key: CRM_KEY, body: { call_id: id, phone_from: CALLER, phone_to: DID } });
  assert.equal((await getCall(id)).status, 'RINGING');
  assert.deepEqual(await p.evaluate(() => C2C.offers.map((o) => o.call_id)), [id]);
  await shot(p, 'inbound-card');

  p.callId = id;
  await p.click(`#cards article[data-call-id="${id}"] button.accept`);
  await p.waitForSelector(`#cards article[data-call-id="${id}"][data-state="on-call"]`, { timeout: 15000 });
  assert.deepEqual(await crmLog(p, 'accepted'), [{ e: 'accepted', callId: id }]);
  assert.deepEqual(p.steps.slice(0, 2), ['connect.done', 'mic.published']);
  assert.equal(p.joined.identity, agent, 'the LiveKit token is the agent\'s');
  assert.match(p.joined.room, /^c2c-[0-9a-f]+$/);
  assert.equal(p.joined.statusBeforeMic, 'RINGING', 'no answer before the agent published audio');
  assert.deepEqual(await p.evaluate(() => [C2C.callId, C2C.direction, C2C.offers.length]), [id, 'inbound', 0]);
  assert.ok(!p.posts.includes('connect'), `no /connect for an inbound call: ${p.posts.join(', ')}`);

  // The gateway forwarded the caller into the room; the simulator answered once the
  // agent's audio was there, and the edge relayed the 200 to the carrier.
  const active = await until('the gateway ACTIVE', 10000, async () => { const c = await getCall(id); return c.status === 'ACTIVE' && c; });
  assert.deepEqual([active.connected, active.agent_id], [true, agent]);
  const parts = await simParticipants(p.joined.room);
  const sip = parts.find(isSipParticipant);
  assert.ok(sip, `the caller's SIP participant in the room: ${JSON.stringify(parts)}`);
  assert.deepEqual(
    [sip.attributes['sip.callStatus'], sip.attributes['c2c.callId'], sip.attributes['c2c.direction']],
    ['active', id, 'inbound'],
    JSON.stringify(sip),
  );
  assert.ok(parts.some((x) => x.identity === agent && (x.tracks || []).length === 1), JSON.stringify(parts));
  assert.ok((await simRooms()).includes(p.joined.room));
  // LiveKit's part in the browser: the caller's participant joins the agent's Room.
  await p.evaluate((status) => window.fakeRooms[0].sipJoins(status), sip.attributes['sip.callStatus']);
  await until('the page active', 5000, async () => (await p.evaluate(() => C2C.state)) === 'active');
  await shot(p, 'inbound-active');
  const status = await until('the /status answer', 5000, async () => p.answers.find((a) => a.action === 'status'));
  assert.equal(status.status, 200, JSON.stringify(status));

  // The caller hangs up: the gateway ends the call ANSWERED; the caller's participant
  // leaves the room, and the page ends the call as for an outbound customer drop.
  await sipp.ok('answered');
  const ended = await until('the gateway ENDED', 10000, async () => { const c = await getCall(id); return c.ended && c; });
  assert.deepEqual([ended.call_status, ended.connected], ['ANSWERED', true], JSON.stringify(ended));
  assert.ok(ended.duration_seconds >= 2, JSON.stringify(ended));
  // The caller's participant left and the gateway deleted the room: the agent's Room
  // hears both, in that order.
  await until('the room deleted', 5000, async () => !(await simRooms()).includes(p.joined.room));
  await p.evaluate(() => {
    const r = window.fakeRooms[0];
    r.sipLeaves();
    r.connected = false;
    r.emit(FakeRoom.RoomEvent.Disconnected);
  });
  await p.waitForFunction(() => window.C2C.state === 'ended');
  assert.deepEqual(await states(p), ['joining', 'ringing', 'active', 'ended']);
  assert.equal((await crmLog(p, 'state')).at(-1).reason, 'customer_dropped');
  assert.equal(await p.$('#cards article'), null, 'the card is gone');
  await until('the /hangup answer', 5000, async () => p.answers.find((a) => a.action === 'hangup'));
  assert.deepEqual(p.answers.map((a) => [a.action, a.status]), [['status', 200], ['hangup', 200]]);
  assert.equal((await getCall(id)).call_status, 'ANSWERED', 'the late /hangup changed nothing');

  const hook = await webhookFor(id);
  assert.equal(hook.key, CRM_KEY);
  const b = hook.body;
  assert.deepEqual(
    [b.direction, b.call_status, b.phone_from, b.phone_to, b.agent_id, b.lead_id],
    ['inbound', 'ANSWERED', CALLER, DID, agent, LEAD.lead_id],
    JSON.stringify(b),
  );
  assert.ok(b.duration_seconds >= 2, JSON.stringify(b));
  const rec = await ownerCall(id);
  assert.deepEqual(rec.call.offers.map((o) => [o.agent_id, o.outcome]), [[agent, 'accepted']], JSON.stringify(rec));
  assert.deepEqual(await crmLog(p, 'error'), []);
  assert.deepEqual(p.errors, []);
  await closePage(p);
});

test('the caller hangs up while the card rings: the card closes on incoming_cancelled (caller_hung_up), the call is MISSED', async () => {
  const p = await agentPage('ib-ravi');
  const sipp = await carrier('inbound_cancel.xml', { '@PAUSE@': '2500' });
  const id = await ringingCard(p);
  await p.waitForSelector('#cards article', { state: 'detached', timeout: 10000 });
  assert.deepEqual(await crmLog(p, 'incoming_cancelled'), [{ e: 'incoming_cancelled', call_id: id, callId: id, reason: 'caller_hung_up' }]);
  assert.deepEqual(await p.evaluate(() => C2C.offers), []);
  // Too late to accept: refused at once, nothing joined.
  const late = await p.evaluate((id) => C2C.accept(id).then(() => 'accepted', (e) => e.code), id);
  assert.equal(late, 'offer_gone');
  assert.equal(await p.evaluate(() => window.fakeRooms.length), 0);
  assert.deepEqual(await states(p), []);
  await sipp.ok('cancel');
  const ended = await until('the gateway ENDED', 10000, async () => { const c = await getCall(id); return c.ended && c; });
  assert.equal(ended.call_status, 'MISSED');
  const b = (await webhookFor(id)).body;
  assert.deepEqual([b.direction, b.call_status, b.agent_id, b.phone_from, b.lead_id], ['inbound', 'MISSED', '', CALLER, LEAD.lead_id], JSON.stringify(b));
  assert.deepEqual(p.posts, [], 'the page sent nothing for the call');
  assert.deepEqual(p.errors, []);
  await closePage(p);
});

test('the page rejects: the offer goes on to the next agent (a plain presence socket), never back to the page', async () => {
  const p = await agentPage('ib-meera');
  // Available after the page: the page's agent has been idle longest and is offered first.
  const other = await socketAgent('ib-karan');
  try {
    const sipp = await carrier('inbound_cancel.xml', { '@PAUSE@': '4000' });
    const id = await ringingCard(p);
    assert.equal(other.frames.find((f) => f.type === 'incoming'), undefined, 'one agent at a time');
    await p.click(`#cards article[data-call-id="${id}"] button.reject`);
    await p.waitForSelector('#cards article', { state: 'detached', timeout: 5000 });
    assert.deepEqual(await crmLog(p, 'rejected'), [{ e: 'rejected', callId: id }]);
    const inc = await other.next('incoming');
    assert.deepEqual([inc.call_id, inc.from, inc.to, inc.lead], [id, CALLER, DID, LEAD]);
    // The caller gives up: the agent now ringing gets the cancel; the page heard nothing more.
    const c = await other.next('incoming_cancelled', 10000);
    assert.deepEqual([c.call_id, c.reason], [id, 'caller_hung_up']);
    await sipp.ok('cancel after a reject');
    assert.equal((await crmLog(p, 'incoming')).length, 1, 'never offered again to the agent who rejected');
    assert.equal(await p.$('#cards article'), null);
    const rec = await ownerCall(id);
    assert.deepEqual(
      rec.call.offers.map((o) => [o.agent_id, o.outcome]),
      [['ib-meera', 'rejected'], ['ib-karan', 'cancelled']],
      JSON.stringify(rec.call.offers),
    );
    const b = (await webhookFor(id)).body;
    assert.deepEqual([b.direction, b.call_status, b.agent_id], ['inbound', 'MISSED', ''], JSON.stringify(b));
    assert.deepEqual(p.errors, []);
  } finally {
    other.close();
    await closePage(p);
  }
});

test('one webhook per call; no presence token ever appeared in a URL a page requested', async () => {
  await new Promise((r) => setTimeout(r, 1000)); // long enough for a duplicate to show up
  const ids = [...new Set(webhooks.map((w) => w.body.call_id))];
  assert.equal(ids.length, 3, JSON.stringify(webhooks));
  for (const id of ids) assert.equal(webhooks.filter((w) => w.body.call_id === id).length, 1, id);
  assert.ok(minted.length >= 4, `${minted.length} tokens minted`);
  const sockets = seenUrls.filter((u) => u.startsWith(PRESENCE_URL));
  assert.ok(sockets.length >= 3, `${sockets.length} presence sockets`);
  assert.ok(sockets.every((u) => u === PRESENCE_URL), `no query on the socket URL: ${sockets.join(' ')}`);
  for (const t of minted) {
    const leaked = seenUrls.filter((u) => u.includes(t) || u.includes(encodeURIComponent(t)));
    assert.deepEqual(leaked, [], 'a presence token in a URL');
  }
});
