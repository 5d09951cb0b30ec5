// The web console at /console/ in headless Chromium against the real gateway and
// simulator: every page renders with real data and no console errors, CSP holds,
// Test normalize shows the dialed string, Analytics charts reflect the calls the Rust
// harness drove, Settings masks secrets and validates LiveKit live, the owner flips
// DLT, Agents lists the registry with its telephony switch, audit trail and live
// availability, and a Sandbox call reaches Ended with the webhook preview. Inbound
// (end of file): Sandbox test inbound calls, missed and answered by the page's sandbox
// agent, and Analytics counting them.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { BASE, env, launch, page, shot, json, until } from './lib.mjs';

const CONSOLE_KEY = env('C2C_CONSOLE_KEY');
const OWNER_KEY = env('C2C_OWNER_KEY');
// Secret values from the policy directory: none may ever reach the browser.
const SECRETS = JSON.parse(env('C2C_SECRETS'));
const DRIVEN = JSON.parse(env('C2C_DRIVEN'));
let browser;

before(async () => { browser = await launch(); });
after(async () => { await browser?.close(); });

async function signIn(p, key) {
  await p.goto(`${BASE}/console/`);
  await p.getByLabel('API key').focus();
  await p.keyboard.type(key);
  await p.keyboard.press('Enter'); // keyboard only: the form submits on Enter
  await p.waitForSelector('#nav:not([hidden])');
}

async function go(p, view) {
  await p.click(`#nav a[data-view="${view}"]`);
  await p.waitForSelector(`section[data-view="${view}"] #view-title`);
}

function noSecrets(text, where) {
  for (const s of SECRETS) assert.ok(!text.includes(s), `a policy secret leaked into ${where}`);
}

test('console HTML: CSP to own origin, no keys embedded, assets typed and cached', async () => {
  const r = await json(`${BASE}/console/`);
  assert.equal(r.status, 200);
  assert.match(r.headers.get('content-type'), /^text\/html/);
  const csp = r.headers.get('content-security-policy');
  const host = new URL(BASE).host;
  assert.ok(csp.includes("script-src 'self';") && csp.includes("default-src 'none'"), csp);
  assert.ok(csp.includes(`connect-src 'self' ws://${host} wss://${host};`), csp);
  assert.ok(!csp.includes('unsafe-inline') && !csp.includes('unsafe-eval'), csp);
  assert.equal(r.headers.get('x-frame-options'), 'DENY');
  assert.ok(!/<script>|<script [^>]*>[^<]/.test(r.body), 'no inline scripts');
  assert.ok(!/c2c_[A-Za-z0-9]{20,}/.test(r.body), 'no key in the page');
  for (const [path, type] of [['/console/app.js', /^text\/javascript/], ['/console/style.css', /^text\/css/]]) {
    const a = await json(BASE + path);
    assert.equal(a.status, 200, path);
    assert.match(a.headers.get('content-type'), type);
    assert.ok(a.headers.get('etag'));
    noSecrets(String(a.body), path);
  }
  assert.equal((await json(`${BASE}/console/nope.js`)).status, 404);
  // Console APIs need a console or owner key; the CRM's calls key is refused.
  assert.equal((await json(`${BASE}/api/c2c/console/session`)).status, 401);
  const calls = await json(`${BASE}/api/c2c/console/session`, { headers: { 'X-api-key': env('C2C_CALLS_KEY') } });
  assert.equal(calls.status, 403);
  // Owner writes need JSON: a cross-site form post (text/plain) is refused.
  const form = await json(`${BASE}/api/c2c/console/tenants/acme/livekit-validate`, {
    method: 'POST', headers: { 'X-api-key': OWNER_KEY, 'Content-Type': 'text/plain' }, body: '{}',
  });
  assert.equal(form.status, 415);
});

test('sign-in: a wrong key is refused with a message; the key stays out of the URL', async () => {
  const p = await page(browser);
  await p.goto(`${BASE}/console/`);
  await shot(p, 'console-signin');
  await p.fill('#key', 'c2c_notarealkeynotarealkeynotarealkey00');
  await p.click('#signin-form button');
  await p.waitForSelector('#signin-error:not([hidden])');
  assert.match(await p.textContent('#signin-error'), /not accepted/);
  // The refused request itself is logged by the browser (401); nothing else may be.
  assert.deepEqual(p.errors, ['console: Failed to load resource: the server responded with a status of 401 (Unauthorized)']);
  p.errors.length = 0;
  await signIn(p, CONSOLE_KEY);
  assert.ok(!p.url().includes(CONSOLE_KEY));
  assert.equal(await p.evaluate(() => sessionStorage.getItem('c2c.console.key')), CONSOLE_KEY);
  assert.equal(await p.evaluate(() => document.cookie), '');
  assert.deepEqual(p.errors, []);
  await p.context().close();
});

test('Trunks lists trunks and Test normalize shows the clean number and dialed string', async () => {
  const p = await page(browser);
  await signIn(p, CONSOLE_KEY);
  await go(p, 'trunks');
  const rows = await p.$$eval('table tbody tr', (trs) => trs.map((tr) => [...tr.children].map((td) => td.textContent)));
  assert.deepEqual(rows.map((r) => r[0]), ['airtel-mum', 'jio-del']);
  assert.equal(rows[0][2], '9911');
  await p.fill('#nz-number', '9530251797');
  await p.click('#normalize-form button[type=submit]');
  await p.waitForSelector('[data-field="dialed"]');
  assert.equal(await p.textContent('[data-field="customer_number"]'), '9530251797');
  assert.equal(await p.textContent('[data-field="dialed"]'), '99119530251797');
  await shot(p, 'console-trunks');
  await p.setViewportSize({ width: 390, height: 844 });
  await shot(p, 'console-trunks-mobile');
  // A wrong number: a clear error, not a crash.
  await p.fill('#nz-number', '12');
  await p.click('#normalize-form button[type=submit]');
  await p.waitForSelector('#normalize-result .error');
  // The refused request (422) is logged by the browser; nothing else may be.
  assert.deepEqual(p.errors, ['console: Failed to load resource: the server responded with a status of 422 (Unprocessable Entity)']);
  await p.context().close();
});

test('Analytics charts reflect the calls driven in this test', async () => {
  const p = await page(browser);
  await signIn(p, CONSOLE_KEY);
  await go(p, 'analytics');
  await p.waitForSelector('#chart-days');
  const api = (await json(`${BASE}/api/c2c/analytics?from=${DRIVEN.date}&to=${DRIVEN.date}`, { headers: { 'X-api-key': CONSOLE_KEY } })).body;
  assert.ok(api.total >= DRIVEN.total, JSON.stringify(api));
  assert.equal(api.failures_by_sip_code['486'], DRIVEN.sip486);
  assert.ok(api.outcomes.ANSWERED >= DRIVEN.answered);
  const bar = await p.getAttribute('#chart-sip g[data-label="486"]', 'data-value');
  assert.equal(Number(bar), DRIVEN.sip486);
  // A hangup before /connect is its own bucket, not a carrier or LiveKit failure.
  assert.ok(api.failures_by_cause.agent_cancelled >= DRIVEN.agent_cancelled, JSON.stringify(api));
  assert.ok(api.failures_by_cause.customer >= DRIVEN.sip486, JSON.stringify(api));
  assert.equal(api.failures_by_cause.carrier, undefined, JSON.stringify(api));
  const cancelled = await p.getAttribute('#chart-causes g[data-label="agent_cancelled"]', 'data-value');
  assert.equal(Number(cancelled), api.failures_by_cause.agent_cancelled);
  const day = await p.$eval(`#chart-days g[data-date="${DRIVEN.date}"]`, (g) => ({
    total: Number(g.dataset.total),
    parts: Object.fromEntries([...g.querySelectorAll('rect')].map((r) => [r.dataset.outcome, Number(r.dataset.value)])),
  }));
  assert.equal(day.total, api.total);
  assert.equal(day.parts.answered, api.outcomes.ANSWERED);
  assert.equal(day.parts.failed, api.outcomes.FAILED);
  assert.equal(await p.textContent('[data-stat="total"] b'), String(api.total));
  await shot(p, 'console-analytics');
  // A trunk with no calls: the empty state.
  await p.selectOption('#an-trunk', 'jio-del');
  await p.click('#analytics-form button[type=submit]');
  await p.waitForSelector('#analytics-empty');
  assert.deepEqual(p.errors, []);
  await p.context().close();
});

test('Integration guide is rendered with the real base URL and ws_url', async () => {
  const p = await page(browser);
  await signIn(p, CONSOLE_KEY);
  await go(p, 'guide');
  assert.equal(await p.textContent('[data-field="base_url"]'), BASE);
  // The tenant's allowed origins, and how to add one.
  const origins = await p.$$eval('#allowed-origins [data-origin]', (els) => els.map((e) => e.textContent));
  assert.ok(origins.includes('http://localhost:3000'), JSON.stringify(origins));
  assert.ok(origins.includes(`http://127.0.0.1:${env('C2C_HOST_PORT')}`), JSON.stringify(origins));
  const how = await p.textContent('#allowed-origins');
  assert.ok(how.includes('policies/tenants/acme.toml') && how.includes('allowed_origins'), how);
  assert.equal(await p.textContent('[data-field="ws_url"]'), BASE.replace('http://', 'ws://'));
  const snippet = await p.textContent('#snippet');
  assert.ok(snippet.includes(`<script src="${BASE}/js/c2c-client.js"></script>`));
  assert.ok(snippet.includes('C2C.startCall(res)'));
  assert.ok((await p.textContent('#webhook-shape')).includes('"phone_to": "9530251797"'));
  noSecrets(await p.content(), 'the guide');
  await shot(p, 'console-guide');
  assert.deepEqual(p.errors, []);
  await p.context().close();
});

test('Settings masks secrets, validates LiveKit live; the owner flips outbound-enable', async () => {
  const p = await page(browser);
  await signIn(p, CONSOLE_KEY);
  await go(p, 'settings');
  await p.click('#livekit-validate');
  await p.waitForSelector('#livekit-verdict .badge');
  assert.equal(await p.textContent('#livekit-verdict .badge'), 'valid');
  noSecrets(await p.content(), 'settings');
  assert.equal(await p.$('#dlt-form'), null, 'a tenant console key cannot flip DLT');
  await shot(p, 'console-settings');
  assert.deepEqual(p.errors, []);
  await p.context().close();

  const o = await page(browser);
  await signIn(o, OWNER_KEY);
  assert.equal(await o.textContent('#role'), 'owner');
  await o.selectOption('#tenant-select', 'acme');
  await go(o, 'settings');
  assert.equal(await o.textContent('#dlt-status'), 'enabled');
  await o.fill('#dlt-by', 'Console Test');
  await o.fill('#dlt-note', 'PE binding re-check');
  await o.click('#dlt-flip');
  await o.waitForSelector('#dlt-status.bad');
  const audit = await o.$$eval('#dlt table tbody tr', (trs) => trs.map((tr) => tr.textContent));
  assert.ok(audit.some((t) => t.includes('on → off') && t.includes('Console Test')), audit.join('|'));
  const api = (await json(`${BASE}/api/telephony/config/owner/acme/outbound-enable`, { headers: { 'X-api-key': OWNER_KEY } })).body;
  assert.equal(api.outbound_enabled, false);
  await shot(o, 'console-settings-owner');
  await o.fill('#dlt-by', 'Console Test');
  await o.click('#dlt-flip');
  await o.waitForSelector('#dlt-status.ok');
  assert.deepEqual(o.errors, []);
  await o.context().close();
});

test('DLT: onboarding, the rules in force, the DND list and a refusal made just now', async () => {
  // A promotional call to a number on acme's DND list, refused at the API.
  const r = await json(`${BASE}/api/c2c/click2call`, {
    method: 'POST',
    headers: { 'X-api-key': env('C2C_CALLS_KEY'), 'Content-Type': 'application/json' },
    body: JSON.stringify({ case_id: 'case-dnd', customer_number: '9530259901', agent_id: 'agent-42', customer_crm_id: 'cust-1', call_category: 'promotional', did: '+911401234567' }),
  });
  assert.equal(r.status, 403, JSON.stringify(r.body));
  assert.equal(r.body.error.code, 'dnd_blocked');
  const p = await page(browser);
  await signIn(p, CONSOLE_KEY);
  await go(p, 'dlt');
  assert.match(await p.textContent('#dlt-steps'), /Principal Entity.*telemarketer.*Outbound enable/s);
  const rules = await p.textContent('#dlt-rules');
  assert.ok(rules.includes('commercial') && rules.includes('00:00-24:00 IST (tenant policy)'), rules);
  assert.ok(rules.includes('promotional 140'), rules);
  const trunks = await p.$$eval('#dlt-rules table tbody tr', (trs) => trs.map((tr) => tr.textContent));
  assert.ok(trunks.some((t) => t.includes('airtel-mum') && t.includes('service')), trunks.join('|'));
  const lists = await p.textContent('#dlt-lists');
  assert.ok(lists.includes('2 numbers') && lists.includes('Consent list'), lists);
  const refusals = await p.$$eval('#dlt-refusals table tbody tr', (trs) => trs.map((tr) => tr.textContent));
  assert.ok(refusals[0].includes('dnd_blocked') && refusals[0].includes('promotional') && refusals[0].includes('95******01'), refusals.join('|'));
  assert.ok(!(await p.content()).includes('9530259901'), 'the refused number is masked');
  // Analytics counts it by rule.
  await go(p, 'analytics');
  await p.waitForSelector('#analytics-dlt table');
  const byRule = await p.$$eval('#analytics-dlt table tbody tr', (trs) => trs.map((tr) => tr.textContent));
  assert.ok(byRule.includes('dnd_blocked1'), byRule.join('|'));
  // The integration guide carries the onboarding steps too.
  await go(p, 'guide');
  assert.match(await p.textContent('#guide-dlt'), /Principal Entity.*call_category/s);
  noSecrets(await p.content(), 'the DLT page');
  await shot(p, 'console-dlt');
  assert.deepEqual(p.errors, []);
  await p.context().close();
});

test('billing: the owner posts a top-up once; the tenant console sees balance, statement and CSV', async () => {
  const o = await page(browser);
  await signIn(o, OWNER_KEY);
  await o.selectOption('#tenant-select', 'acme');
  await go(o, 'billing');
  assert.equal(await o.textContent('#billing-mode'), 'managed');
  const before = Number(await o.getAttribute('#wallet-balance', 'data-paise'));
  await o.fill('#wl-amount', '1234.50');
  await o.fill('#wl-reason', 'NEFT UTR 4096');
  // A double click posts one entry: the form's request id is the same for both.
  await o.dblclick('#wl-post');
  await o.waitForFunction((want) => document.querySelector('#wallet-balance')?.dataset.paise === String(want), before + 123450);
  const wallet = (await json(`${BASE}/api/c2c/wallet?tenant=acme&limit=1000`, { headers: { 'X-api-key': OWNER_KEY } })).body;
  assert.equal(wallet.balance_paise, before + 123450, 'one entry, not two');
  const last = wallet.statement[wallet.statement.length - 1];
  assert.equal(last.kind, 'top_up');
  assert.equal(last.amount_paise, 123450);
  assert.equal(last.reason, 'NEFT UTR 4096');
  assert.match(last.request_id, /^console-/);
  // Not a rupee amount: refused in the page, nothing posted.
  await o.fill('#wl-amount', '12.345');
  await o.fill('#wl-reason', 'typo');
  await o.click('#wl-post');
  await o.waitForSelector('#wallet-form .error');
  await shot(o, 'console-billing-owner');
  assert.deepEqual(o.errors, []);
  await o.context().close();

  const p = await page(browser);
  await signIn(p, CONSOLE_KEY);
  await go(p, 'billing');
  assert.equal(Number(await p.getAttribute('#wallet-balance', 'data-paise')), before + 123450);
  assert.match(await p.textContent('#wallet-balance'), /₹[\d,]+\.\d\d/);
  const rows = await p.$$eval('#statement tbody tr', (trs) => trs.map((tr) => tr.textContent));
  assert.ok(rows.some((t) => t.includes('Top-up') && t.includes('NEFT UTR 4096') && t.includes('₹1,234.50')), rows.join('|'));
  assert.equal(await p.$('#wallet-form'), null, 'only the owner posts entries');
  const card = await p.$$eval('[data-view="billing"] .card table', (ts) => ts[0].textContent);
  assert.ok(card.includes('airtel-mum') && card.includes('₹0.02 per second') && card.includes('₹1.20'), card);
  assert.match(await p.textContent('#min-call'), /₹1\.20/);
  // Nothing held (no call in progress), calls not yet paid from the wallet, and the
  // minutes and spend of the last 30 days from analytics.
  assert.equal(Number(await p.getAttribute('#wallet-available', 'data-paise')), before + 123450);
  assert.equal(Number(await p.getAttribute('#wallet-held', 'data-paise')), 0);
  assert.match(await p.textContent('#charge-calls'), /not yet/);
  assert.ok(Number(await p.getAttribute('#spend-talk', 'data-seconds')) >= 0);
  assert.equal(Number(await p.getAttribute('#spend-total', 'data-paise')), 0);
  assert.ok((await p.textContent('#spend')).includes('airtel-mum'), 'spend by trunk');
  const [download] = await Promise.all([p.waitForEvent('download'), p.click('#statement-csv')]);
  const { readFileSync } = await import('node:fs');
  const csv = readFileSync(await download.path(), 'utf8');
  assert.ok(csv.startsWith('id,seq,at,kind,amount_paise,balance_after_paise,actor,reason,call_id,request_id\r\n'), csv);
  assert.ok(csv.includes(',top_up,123450,'), csv);
  noSecrets(csv, 'the CSV');
  noSecrets(await p.content(), 'the billing page');
  await shot(p, 'console-billing');
  assert.deepEqual(p.errors, []);
  await p.context().close();
});

/** Registers an agent as the CRM backend does (its calls key). */
async function putAgent(id, name, telephony) {
  const r = await json(`${BASE}/api/c2c/agents/${encodeURIComponent(id)}`, {
    method: 'PUT',
    headers: { 'X-api-key': env('C2C_CALLS_KEY'), 'Content-Type': 'application/json' },
    body: JSON.stringify({ name, telephony_enabled: telephony }),
  });
  assert.ok(r.status === 200 || r.status === 201, `PUT agent ${id}: ${r.status} ${JSON.stringify(r.body)}`);
}

/** An agent's browser: a page of the gateway's origin with C2C, holding the agent's presence session. */
async function agentBrowser(agentId) {
  const r = await json(`${BASE}/api/c2c/agents/${encodeURIComponent(agentId)}/session`, {
    method: 'POST', headers: { 'X-api-key': env('C2C_CALLS_KEY'), 'Content-Type': 'application/json' }, body: '{}',
  });
  assert.ok(r.status === 200 || r.status === 201, JSON.stringify(r.body));
  const a = await page(browser);
  await a.goto(`${BASE}/console/`);
  await a.waitForFunction(() => !!window.C2C);
  await a.evaluate(async (token) => {
    window.agentLog = [];
    window.presence = await C2C.presence.connect({ token });
    window.presence.on('availability', (e) => window.agentLog.push(e));
  }, r.body.token);
  return a;
}

const agentCell = (id, field) => `#agents-list [data-agent="${id}"][data-field="${field}"]`;

test('Agents: the registry with telephony switch and audit row, availability live without a reload', async () => {
  await putAgent('con-asha', 'Asha Rao', true);
  await putAgent('con-ravi', 'Ravi Kumar', false);
  const p = await page(browser);
  await signIn(p, CONSOLE_KEY);
  await go(p, 'agents');
  await p.waitForSelector('#agents-live[data-live="on"]');
  const rows = await p.$$eval('#agents-list tbody tr', (trs) => trs.map((tr) => [...tr.children].map((td) => td.textContent.trim())));
  const asha = rows.find((r) => r[1] === 'con-asha');
  assert.deepEqual(asha, ['Asha Rao', 'con-asha', 'on', 'Offline', '—'], JSON.stringify(rows));
  assert.deepEqual(rows.find((r) => r[1] === 'con-ravi'), ['Ravi Kumar', 'con-ravi', 'off', 'Offline', '—']);
  assert.equal(await p.isChecked(agentCell('con-asha', 'telephony')), true);
  assert.equal(await p.isChecked(agentCell('con-ravi', 'telephony')), false);
  await p.evaluate(() => { window.notReloaded = true; });

  // The switch: telephony on for Ravi, in the registry and as an audit row by this key.
  await p.getByRole('switch', { name: 'Telephony for Ravi Kumar (con-ravi)' }).click();
  await p.waitForFunction((sel) => { const el = document.querySelector(sel); return el.checked && !el.disabled; }, agentCell('con-ravi', 'telephony'));
  const ravi = await json(`${BASE}/api/c2c/agents/con-ravi`, { headers: { 'X-api-key': env('C2C_CALLS_KEY') } });
  assert.equal(ravi.body.telephony_enabled, true, JSON.stringify(ravi.body));
  const auditRow = await until('the audit row', 5000, async () => {
    const trail = await p.$$eval('#agents-audit tbody tr', (trs) => trs.map((tr) => tr.textContent));
    return trail.find((t) => t.includes('con-ravi') && t.includes('Telephony: off → on'));
  });
  assert.ok(auditRow.includes('acme-console'), `the console key's id: ${auditRow}`);

  // Live: Asha becomes available in her own browser; the page shows it without a reload.
  const agent = await agentBrowser('con-asha');
  await agent.evaluate(() => window.presence.setAvailability('available'));
  await p.waitForSelector(`${agentCell('con-asha', 'availability')}[data-availability="available"]`, { timeout: 5000 });
  assert.equal(await p.textContent(agentCell('con-asha', 'availability')), 'Available');
  assert.equal(await p.evaluate(() => window.notReloaded), true, 'no reload');
  await shot(p, 'console-agents');

  // Telephony off from the console: Asha goes offline at once, in both browsers.
  await p.getByRole('switch', { name: 'Telephony for Asha Rao (con-asha)' }).click();
  await p.waitForSelector(`${agentCell('con-asha', 'availability')}[data-availability="offline"]`, { timeout: 5000 });
  const last = await agent.waitForFunction(() => window.agentLog.find((e) => e.reason === 'telephony_disabled')).then((h) => h.jsonValue());
  assert.equal(last.availability, 'offline');
  assert.deepEqual([...p.errors, ...agent.errors], []);
  await agent.context().close();
  await p.context().close();
});

test('a Sandbox call goes through the agent flow and reaches Ended with the webhook preview', async () => {
  const p = await page(browser);
  await signIn(p, CONSOLE_KEY);
  await go(p, 'sandbox');
  assert.deepEqual(p.errors, [], 'the page renders cleanly');
  await shot(p, 'console-sandbox-empty');
  await p.fill('#sb-number', '9530251799');
  await p.click('#sb-place');
  await p.waitForSelector('#sandbox-steps li[data-step="Initiated"].current, #sandbox-steps li[data-step="Initiated"].done');
  await p.waitForSelector('[data-field="dialed"]');
  assert.equal(await p.textContent('[data-field="dialed"]'), '99119530251799');
  await p.waitForSelector('#webhook-preview', { timeout: 40000 });
  assert.equal(await p.getAttribute('#sandbox-steps li[data-step="Ended"]', 'class'), 'current');
  const preview = await p.textContent('#webhook-preview');
  const body = JSON.parse(preview.slice(preview.indexOf('{')));
  assert.equal(body.phone_to, '9530251799');
  assert.equal(body.case_id, 'sandbox');
  assert.ok(['ANSWERED', 'NOT_ANSWERED', 'FAILED'].includes(body.call_status));
  assert.deepEqual(Object.keys(body), ['call_id', 'case_id', 'customer_crm_id', 'phone_to', 'phone_from', 'call_status', 'duration_seconds', 'agent_id']);
  assert.ok(preview.includes('X-api-key: •••••••• (set)'));
  noSecrets(await p.content(), 'the sandbox');
  const log = await p.$$eval('#sandbox-log li', (li) => li.map((x) => x.textContent));
  console.log('# sandbox log:', JSON.stringify(log.reverse()));
  assert.ok(log.some((l) => l.endsWith('client: joining')), 'the page joined the room through C2C');
  await shot(p, 'console-sandbox-ended');
  // The only console errors allowed are livekit-client's own reports of the failed
  // peer connection (the simulator carries no media).
  const unexpected = p.errors.filter((e) => !/pc connection|could not establish|peer connection|livekit|Room|connection/i.test(e));
  assert.deepEqual(unexpected, [], p.errors.join('\n'));
  await p.context().close();
});

// Inbound (issue 21): the bundled simulator calls the tenant's number at the gateway's
// own SIP edge as a carrier would. Nobody available first (no_agent), then this page as
// the sandbox agent; the Rust harness checks the CRM webhooks of both calls.
const DID = '+918045678901';
const CALLER = '+919812345678';
const inboundCalls = {};

/** The inbound preview's body; the calls' ids go to the Rust harness. */
async function inboundPreview(p) {
  await p.waitForSelector('#inbound-webhook-preview', { timeout: 40000 });
  const text = await p.textContent('#inbound-webhook-preview');
  const body = JSON.parse(text.slice(text.indexOf('{')));
  assert.ok(text.includes('X-api-key: •••••••• (set)'), text);
  return body;
}

function saveInbound(which, id) {
  inboundCalls[which] = id;
  writeFileSync(env('C2C_INBOUND_OUT'), JSON.stringify(inboundCalls));
}

test('a Sandbox inbound call with nobody to answer ends MISSED no_agent with the inbound webhook preview', async () => {
  const p = await page(browser);
  await signIn(p, CONSOLE_KEY);
  await go(p, 'sandbox');
  assert.deepEqual(await p.$$eval('#sb-in-did option', (o) => o.map((x) => x.value)), [DID]);
  assert.equal(await p.isChecked('#sb-in-answer'), false);
  await p.fill('#sb-in-hold', '3');
  await p.click('#sb-in-place');
  const body = await inboundPreview(p);
  assert.deepEqual(Object.keys(body), ['call_id', 'direction', 'phone_from', 'phone_to', 'call_status', 'duration_seconds', 'agent_id']);
  assert.deepEqual([body.direction, body.call_status, body.phone_from, body.phone_to, body.agent_id, body.duration_seconds],
    ['inbound', 'MISSED', CALLER, DID, '', 0]);
  assert.equal(await p.getAttribute('#inbound-steps li[data-step="Ended"]', 'class'), 'current');
  for (const s of ['Offered', 'Active']) assert.equal(await p.getAttribute(`#inbound-steps li[data-step="${s}"]`, 'class'), '', s);
  assert.equal(await p.textContent('#inbound-detail [data-field="status"]'), 'ENDED · MISSED');
  assert.equal(await p.textContent('#inbound-detail [data-field="disconnect_reason"]'), 'no_agent');
  assert.equal(await p.textContent('#inbound-detail [data-field="direction"]'), 'inbound');
  // The console's call view, as the page read it.
  const c = (await json(`${BASE}/api/c2c/console/calls/${body.call_id}`, { headers: { 'X-api-key': CONSOLE_KEY } })).body;
  assert.deepEqual([c.direction, c.did, c.offers, c.lead_id, c.trunk], ['inbound', DID, [], null, null], JSON.stringify(c));
  saveInbound('missed', body.call_id);
  await shot(p, 'console-sandbox-inbound-missed');
  assert.deepEqual(p.errors, []);
  await p.context().close();
});

test('a Sandbox inbound call answered by the sandbox agent goes ACTIVE, then ENDED ANSWERED when the caller hangs up', async () => {
  const p = await page(browser);
  await signIn(p, CONSOLE_KEY);
  await go(p, 'sandbox');
  await p.check('#sb-in-answer');
  await p.fill('#sb-in-hold', '3');
  await p.click('#sb-in-place');
  // The offer to this page's agent, accepted; the simulator answers once it joined.
  await p.waitForSelector('#inbound-detail [data-offer-agent="console-sandbox"]', { timeout: 20000 });
  await p.waitForSelector('#inbound-steps li[data-step="Active"].current', { timeout: 20000 });
  assert.equal(await p.textContent('#inbound-detail [data-field="status"]'), 'ACTIVE');
  assert.equal(await p.getAttribute('#inbound-steps li[data-step="Offered"]', 'class'), 'done');
  await shot(p, 'console-sandbox-inbound-active');
  // The caller stays on 3 s, then hangs up: ANSWERED.
  const body = await inboundPreview(p);
  assert.deepEqual([body.direction, body.call_status, body.phone_from, body.phone_to, body.agent_id],
    ['inbound', 'ANSWERED', CALLER, DID, 'console-sandbox']);
  assert.ok(body.duration_seconds >= 2 && body.duration_seconds <= 10, JSON.stringify(body));
  assert.equal(await p.getAttribute('#inbound-steps li[data-step="Ended"]', 'class'), 'current');
  assert.equal(await p.textContent('#inbound-detail [data-field="status"]'), 'ENDED · ANSWERED');
  assert.equal(await p.getAttribute('#inbound-detail [data-offer-outcome]', 'data-offer-outcome'), 'accepted');
  const c = (await json(`${BASE}/api/c2c/console/calls/${body.call_id}`, { headers: { 'X-api-key': CONSOLE_KEY } })).body;
  assert.equal(c.offers.length, 1, JSON.stringify(c));
  assert.deepEqual([c.offers[0].agent_id, c.offers[0].outcome], ['console-sandbox', 'accepted']);
  assert.ok(c.offers[0].ended_ms >= c.offers[0].offered_ms);
  const log = await p.$$eval('#inbound-log li', (li) => li.map((x) => x.textContent));
  console.log('# inbound sandbox log:', JSON.stringify(log.reverse()));
  assert.ok(log.some((l) => l.includes('accepted: room c2c-')), 'accepted over presence');
  assert.ok(log.some((l) => l.includes('microphone published')), 'joined through the simulator');
  saveInbound('answered', body.call_id);
  await shot(p, 'console-sandbox-inbound');
  noSecrets(await p.content(), 'the inbound sandbox');
  assert.deepEqual(p.errors, []);
  await p.context().close();
});

test('Analytics counts the inbound calls and the missed one', async () => {
  const p = await page(browser);
  await signIn(p, CONSOLE_KEY);
  await go(p, 'analytics');
  await p.waitForSelector('#chart-days');
  const api = (await json(`${BASE}/api/c2c/analytics?from=${DRIVEN.date}&to=${DRIVEN.date}`, { headers: { 'X-api-key': CONSOLE_KEY } })).body;
  assert.ok(api.inbound >= 2 && api.outcomes.MISSED >= 1 && api.outcomes.ANSWERED >= 1, JSON.stringify(api));
  assert.equal(await p.textContent('[data-stat="missed"] b'), String(api.outcomes.MISSED));
  assert.equal(await p.textContent('[data-stat="inbound"] b'), String(api.inbound));
  assert.match(await p.textContent('[data-stat="inbound"]'), /% of calls\)/);
  const day = await p.$eval(`#chart-days g[data-date="${DRIVEN.date}"]`, (g) => ({
    total: Number(g.dataset.total),
    inbound: Number(g.dataset.inbound),
    missed: Number(g.querySelector('rect[data-outcome="missed"]')?.dataset.value),
  }));
  assert.deepEqual(day, { total: api.total, inbound: api.inbound, missed: api.outcomes.MISSED });
  const row = await p.$$eval('table tbody tr', (trs, date) => trs.map((tr) => [...tr.children].map((td) => td.textContent))
    .find((r) => r[0] === date), DRIVEN.date);
  assert.deepEqual([row[2], row[6]], [String(api.inbound), String(api.outcomes.MISSED)], JSON.stringify(row));
  await shot(p, 'console-analytics-inbound');
  assert.deepEqual(p.errors, []);
  await p.context().close();
});
