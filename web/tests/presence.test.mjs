// C2C.presence (/js/c2c-client.js) in headless Chromium, on a CRM page of another
// origin, against the real gateway's presence channel (docs/agents.md): the session's
// first frame carries the token, a session starts offline, availability changes are
// confirmed by their events, a second session replaces the first, an agent without
// telephony cannot become available, a supervisor sees the tenant's changes, a dropped
// socket resumes, a refused token is replaced through fetchToken, and the header pill
// renders nothing where it could not work. The CRM backend's part (registering agents,
// minting presence tokens) is plain fetch from here with the tenant's calls key.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { BASE, env, launch, page, shot, json } from './lib.mjs';

const CALLS_KEY = env('C2C_CALLS_KEY');
const HOST_PORT = Number(env('C2C_HOST_PORT'));
const HOST = `http://127.0.0.1:${HOST_PORT}`;
const WS_BASE = BASE.replace(/^http/, 'ws');
const PRESENCE_URL = `${WS_BASE}/api/c2c/agents/presence`;
const minted = []; // every presence token this file minted: none may appear in a URL
const seenUrls = []; // every URL a page requested, WebSockets included
let browser;
let server;

// The CRM's agent pages. /strict.html carries a Content-Security-Policy without
// 'unsafe-inline' for scripts or styles: the pill must render under it.
const STRICT_CSP = `default-src 'none'; script-src ${BASE}; connect-src ${WS_BASE}; style-src 'self'; img-src data:`;
function crmHtml() {
  return `<!doctype html><html><head><meta charset="utf-8"><title>CRM agent</title>
<link rel="icon" href="data:,"><script src="${BASE}/js/c2c-client.js"></script></head>
<body><header><h1>CRM agent page</h1> <span id="pill"></span></header></body></html>`;
}

before(async () => {
  server = createServer((req, res) => {
    const headers = { 'Content-Type': 'text/html; charset=utf-8' };
    if (req.url === '/strict.html') headers['Content-Security-Policy'] = STRICT_CSP;
    res.writeHead(200, headers);
    res.end(crmHtml());
  });
  await new Promise((r) => server.listen(HOST_PORT, '127.0.0.1', r));
  browser = await launch();
});

after(async () => {
  await browser?.close();
  server.closeAllConnections();
  await new Promise((r) => server.close(r));
});

const backend = { 'X-api-key': CALLS_KEY, 'Content-Type': 'application/json' };

/** Registers (or updates) an agent, as the CRM backend does. */
async function putAgent(id, name, telephony) {
  const r = await json(`${BASE}/api/c2c/agents/${encodeURIComponent(id)}`, {
    method: 'PUT', headers: backend, body: JSON.stringify({ name, telephony_enabled: telephony }),
  });
  assert.ok(r.status === 200 || r.status === 201, `PUT agent ${id}: ${r.status} ${JSON.stringify(r.body)}`);
  return r.body;
}

/** Mints a presence session for the agent's browser, as the CRM backend does. */
async function mint(id, supervisor = false) {
  const r = await json(`${BASE}/api/c2c/agents/${encodeURIComponent(id)}/session`, {
    method: 'POST', headers: backend, body: JSON.stringify(supervisor ? { supervisor: true } : {}),
  });
  assert.ok(r.status === 200 || r.status === 201, `session for ${id}: ${r.status} ${JSON.stringify(r.body)}`);
  assert.equal(typeof r.body.token, 'string');
  minted.push(r.body.token);
  return r.body;
}

const getAgent = async (id) => (await json(`${BASE}/api/c2c/agents/${encodeURIComponent(id)}`, { headers: { 'X-api-key': CALLS_KEY } })).body;

/** A CRM page with C2C loaded; records its requests and its WebSocket frames. */
async function crmPage(path = '/agent.html') {
  const p = await page(browser);
  p.sockets = [];
  p.on('request', (q) => seenUrls.push(q.url()));
  p.on('websocket', (ws) => {
    seenUrls.push(ws.url());
    const s = { url: ws.url(), sent: [], received: [] };
    p.sockets.push(s);
    ws.on('framesent', (f) => s.sent.push(JSON.parse(String(f.payload))));
    ws.on('framereceived', (f) => s.received.push(JSON.parse(String(f.payload))));
  });
  await p.addInitScript(() => {
    window.violations = [];
    document.addEventListener('securitypolicyviolation', (e) => window.violations.push(`${e.violatedDirective} ${e.blockedURI}`));
    // The page's sockets, reachable so a test can drop one as a network would.
    const Native = window.WebSocket;
    window.sockets = [];
    window.WebSocket = class extends Native {
      constructor(...args) {
        super(...args);
        window.sockets.push(this);
      }
    };
  });
  await p.goto(`${HOST}${path}`);
  await p.waitForFunction(() => !!window.C2C);
  await p.evaluate(() => { window.log = []; });
  return p;
}

// In the page: opens the presence session and logs its events in window.log.
// `fetchFromTest`: fetchToken asks the test (page binding mintToken) for a new token.
async function connectIn({ token, fetchFromTest }) {
  const o = { token };
  if (fetchFromTest) {
    o.fetchToken = async () => {
      window.fetched = (window.fetched || 0) + 1;
      return window.mintToken();
    };
  }
  try {
    const h = await C2C.presence.connect(o);
    window.presence = h;
    for (const e of ['ready', 'availability', 'agents', 'replaced', 'closed', 'error', 'reconnecting']) {
      h.on(e, (d) => window.log.push({ e, ...d }));
    }
    return {
      ok: true, state: h.state, agentId: h.agentId, availability: h.availability,
      telephonyEnabled: h.telephonyEnabled, supervisor: h.supervisor, sessionId: h.sessionId,
    };
  } catch (e) {
    return { ok: false, code: e.code, message: e.message };
  }
}

// In the page: setAvailability, as a plain result.
async function setIn(a) {
  try {
    return { ok: true, ...(await window.presence.setAvailability(a)) };
  } catch (e) {
    return { ok: false, code: e.code, message: e.message };
  }
}

const logOf = (p, event) => p.evaluate((event) => window.log.filter((x) => x.e === event), event);
const pill = (p) => p.$eval('#pill', (el) => ({ children: el.childElementCount, text: el.textContent }));
const NOTHING = { children: 0, text: '' };

test('connect: the token travels in the first frame only; the session starts offline', async () => {
  await putAgent('pres-asha', 'Asha Rao', true);
  const s = await mint('pres-asha');
  assert.equal(s.ws_url, PRESENCE_URL);
  const p = await crmPage();
  const r = await p.evaluate(connectIn, { token: s.token });
  assert.ok(r.ok && r.sessionId, JSON.stringify(r));
  assert.deepEqual(r, {
    ok: true, state: 'ready', agentId: 'pres-asha', availability: 'offline', telephonyEnabled: true, supervisor: false, sessionId: r.sessionId,
  });
  assert.equal(p.sockets.length, 1);
  assert.equal(p.sockets[0].url, PRESENCE_URL, 'the default URL: the gateway the script came from, no query');
  assert.deepEqual(p.sockets[0].sent[0], { type: 'auth', token: s.token });
  const ready = p.sockets[0].received[0];
  assert.deepEqual([ready.type, ready.agent_id, ready.availability, ready.session_id], ['ready', 'pres-asha', 'offline', r.sessionId]);
  assert.equal((await getAgent('pres-asha')).availability, 'offline');
  assert.deepEqual(p.errors, []);
  await p.context().close();
});

test('setAvailability: available, away, offline, each confirmed by its availability event', async () => {
  const s = await mint('pres-asha');
  const p = await crmPage();
  assert.equal((await p.evaluate(connectIn, { token: s.token })).ok, true);
  for (const a of ['available', 'away', 'offline']) {
    const r = await p.evaluate(setIn, a);
    assert.equal(r.ok, true, JSON.stringify(r));
    assert.deepEqual([r.agentId, r.availability, r.reason, r.onCall], ['pres-asha', a, 'set', false]);
    assert.ok(!Number.isNaN(Date.parse(r.at)), `at: ${r.at}`);
    assert.equal(await p.evaluate(() => window.presence.availability), a);
    assert.equal((await getAgent('pres-asha')).availability, a, 'the registry shows it live');
  }
  assert.deepEqual((await logOf(p, 'availability')).map((e) => e.availability), ['available', 'away', 'offline']);
  const sets = p.sockets[0].sent.filter((f) => f.type === 'set_availability').map((f) => f.availability);
  assert.deepEqual(sets, ['available', 'away', 'offline']);
  assert.deepEqual(await p.evaluate(() => window.log.filter((e) => e.e === 'error')), []);
  assert.deepEqual(p.errors, []);
  await p.context().close();
});

test('the pill: nothing without a session or without telephony; the live state otherwise, under a strict CSP', async () => {
  await putAgent('pres-pill', 'Pill Agent', true);
  const p = await crmPage('/strict.html');
  const mountPill = (opts) => p.evaluate((opts) => { C2C.presence.mountPill(document.querySelector('#pill'), opts); }, opts);
  await mountPill({ telephonyEnabled: true });
  assert.deepEqual(await pill(p), NOTHING, 'no presence session yet');
  assert.equal((await p.evaluate(connectIn, { token: (await mint('pres-pill')).token })).ok, true);
  await mountPill({ telephonyEnabled: false });
  assert.deepEqual(await pill(p), NOTHING, 'telephonyEnabled false');
  await mountPill({ telephonyEnabled: true });
  const select = p.getByRole('combobox', { name: 'Your availability for calls' });
  assert.equal(await select.inputValue(), 'offline');
  assert.equal(await p.getAttribute('#pill .c2c-pill', 'data-availability'), 'offline');
  const options = await p.$$eval('#pill option', (os) => os.map((o) => [o.value, o.textContent]));
  assert.deepEqual(options, [['available', 'Available'], ['away', 'Away'], ['offline', 'Offline']]);
  await select.focus();
  await select.selectOption('available');
  await p.waitForSelector('#pill .c2c-pill[data-availability="available"]');
  assert.equal((await getAgent('pres-pill')).availability, 'available');
  await shot(p, 'presence-pill');
  // A change made elsewhere shows too: telephony switched off makes the agent offline
  // and leaves the pill nothing to offer.
  await putAgent('pres-pill', 'Pill Agent', false);
  await p.waitForFunction(() => document.querySelector('#pill').childElementCount === 0);
  const last = (await logOf(p, 'availability')).at(-1);
  assert.deepEqual([last.availability, last.reason], ['offline', 'telephony_disabled']);
  // Switched on again: the pill comes back (the gateway tells both changes).
  await putAgent('pres-pill', 'Pill Agent', true);
  await p.waitForSelector('#pill .c2c-pill[data-availability="offline"]');
  assert.deepEqual(await p.evaluate(() => window.violations), [], 'no CSP violation');
  assert.deepEqual(p.errors, []);
  await p.context().close();
});

test('a second session for the same agent replaces the first, which does not reconnect', async () => {
  await putAgent('pres-twice', 'Two Tabs', true);
  const a = await crmPage();
  const b = await crmPage();
  assert.equal((await a.evaluate(connectIn, { token: (await mint('pres-twice')).token })).ok, true);
  assert.equal((await a.evaluate(setIn, 'available')).ok, true);
  const rb = await b.evaluate(connectIn, { token: (await mint('pres-twice')).token });
  assert.deepEqual([rb.ok, rb.availability], [true, 'offline'], 'a new session starts offline, always');
  await a.waitForFunction(() => window.log.some((e) => e.e === 'closed'));
  const logA = await a.evaluate(() => window.log.map((e) => (e.e === 'closed' ? `closed:${e.code}:${e.reason}` : e.e)));
  assert.ok(logA.includes('replaced'), logA.join(', '));
  assert.ok(logA.includes('closed:4409:replaced'), logA.join(', '));
  assert.ok(!logA.includes('error') && !logA.includes('reconnecting'), logA.join(', '));
  assert.equal(await a.evaluate(() => window.presence.state), 'closed');
  assert.deepEqual(await a.evaluate(setIn, 'available'), { ok: false, code: 'not_connected', message: 'the presence channel is not connected' });
  await new Promise((r) => setTimeout(r, 1500));
  assert.equal(a.sockets.length, 1, 'no reconnect after 4409');
  assert.equal((await b.evaluate(setIn, 'away')).ok, true, 'the new tab holds the session');
  assert.equal((await getAgent('pres-twice')).availability, 'away');
  assert.deepEqual([...a.errors, ...b.errors], []);
  await a.context().close();
  await b.context().close();
});

test('an agent without telephony stays offline: available and away are refused with agent_disabled', async () => {
  await putAgent('pres-off', 'No Telephony', false);
  const p = await crmPage();
  const r = await p.evaluate(connectIn, { token: (await mint('pres-off')).token });
  assert.deepEqual([r.ok, r.telephonyEnabled, r.availability], [true, false, 'offline']);
  for (const a of ['available', 'away']) {
    const refused = await p.evaluate(setIn, a);
    assert.deepEqual([refused.ok, refused.code], [false, 'agent_disabled'], JSON.stringify(refused));
  }
  assert.equal((await p.evaluate(setIn, 'offline')).ok, true, 'offline is always allowed');
  assert.equal((await getAgent('pres-off')).availability, 'offline');
  // The pill follows the gateway's word when the page does not say: nothing to show.
  await p.evaluate(() => { C2C.presence.mountPill(document.querySelector('#pill')); });
  assert.deepEqual(await pill(p), NOTHING);
  assert.deepEqual(p.errors, []);
  await p.context().close();
});

test('a supervisor session gets the tenant\'s agents, then every change of theirs', async () => {
  await putAgent('pres-lead', 'Team Lead', true);
  await putAgent('pres-watched', 'Watched Agent', true);
  const sup = await crmPage();
  const r = await sup.evaluate(connectIn, { token: (await mint('pres-lead', true)).token });
  assert.deepEqual([r.ok, r.supervisor], [true, true], JSON.stringify(r));
  await sup.waitForFunction(() => window.log.some((e) => e.e === 'agents'));
  const snapshot = (await logOf(sup, 'agents'))[0].agents;
  const watched = snapshot.find((x) => x.agentId === 'pres-watched');
  assert.deepEqual(watched, { agentId: 'pres-watched', name: 'Watched Agent', telephonyEnabled: true, availability: 'offline', onCall: false });
  const agent = await crmPage();
  assert.equal((await agent.evaluate(connectIn, { token: (await mint('pres-watched')).token })).ok, true);
  for (const a of ['available', 'away']) {
    assert.equal((await agent.evaluate(setIn, a)).ok, true);
    const seen = await sup.waitForFunction((a) => window.log.find((e) => e.e === 'availability' && e.agentId === 'pres-watched' && e.availability === a), a)
      .then((h) => h.jsonValue());
    assert.deepEqual([seen.reason, seen.onCall], ['set', false]);
  }
  assert.deepEqual([...sup.errors, ...agent.errors], []);
  await agent.context().close();
  await sup.context().close();
});

test('a dropped socket reconnects, resuming the session: the availability survives', async () => {
  await putAgent('pres-drop', 'Flaky Network', true);
  const s = await mint('pres-drop');
  const p = await crmPage();
  const r = await p.evaluate(connectIn, { token: s.token });
  assert.equal((await p.evaluate(setIn, 'available')).ok, true);
  await p.evaluate(() => window.sockets.at(-1).close()); // as a network drop: not disconnect()
  await p.waitForFunction(() => window.log.some((e) => e.e === 'ready'), null, { timeout: 15000 });
  const events = (await p.evaluate(() => window.log.map((e) => e.e))).filter((e) => e === 'reconnecting' || e === 'ready');
  assert.deepEqual(events, ['reconnecting', 'ready']);
  assert.equal(p.sockets.length, 2);
  assert.deepEqual(p.sockets[1].sent[0], { type: 'auth', token: s.token, resume: r.sessionId });
  assert.equal(await p.evaluate(() => window.presence.availability), 'available');
  assert.equal((await getAgent('pres-drop')).availability, 'available');
  assert.equal((await p.evaluate(setIn, 'away')).ok, true, 'the new socket carries changes');
  assert.deepEqual(p.errors, []);
  await p.context().close();
});

test('a refused token (4401) is replaced through fetchToken; without fetchToken connect rejects', async () => {
  await putAgent('pres-expired', 'Expired Token', true);
  const bad = 'pt1.not-a-valid-token';
  const p = await crmPage();
  await p.exposeFunction('mintToken', async () => (await mint('pres-expired')).token);
  const r = await p.evaluate(connectIn, { token: bad, fetchFromTest: true });
  assert.deepEqual([r.ok, r.state, r.agentId], [true, 'ready', 'pres-expired'], JSON.stringify(r));
  assert.equal(await p.evaluate(() => window.fetched), 1);
  const auths = p.sockets.map((x) => x.sent[0]);
  assert.deepEqual(auths, [{ type: 'auth', token: bad }, { type: 'auth', token: minted.at(-1) }]);
  const q = await crmPage();
  const refused = await q.evaluate(connectIn, { token: bad });
  assert.deepEqual([refused.ok, refused.code], [false, 'unauthorized'], JSON.stringify(refused));
  assert.equal(q.sockets.length, 1, 'no retry without fetchToken');
  assert.deepEqual([...p.errors, ...q.errors], []);
  await p.context().close();
  await q.context().close();
});

test('no presence token ever appeared in a URL a page requested', () => {
  assert.ok(minted.length >= 10, `${minted.length} tokens minted`);
  const sockets = seenUrls.filter((u) => u.startsWith(PRESENCE_URL));
  assert.ok(sockets.length >= 10, `${sockets.length} presence sockets`);
  assert.ok(sockets.every((u) => u === PRESENCE_URL), `no query on the socket URL: ${sockets.join(' ')}`);
  for (const t of minted) {
    const leaked = seenUrls.filter((u) => u.includes(t) || u.includes(encodeURIComponent(t)));
    assert.deepEqual(leaked, [], 'a presence token in a URL');
  }
});
