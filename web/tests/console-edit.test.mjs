// Editing a tenant in the console (headless Chromium, real gateway): a bring-your-own
// tenant's console key changes its CRM webhook, its LiveKit credentials (refused when
// LiveKit refuses them, saved when a second real LiveKit simulator accepts them) and
// its trunks; a managed tenant's console key may change its webhook only; the owner
// turns the byot tenant managed and changes the platform's call knobs. Every change shows in the audit, secrets never reach
// the page.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { BASE, env, launch, page, shot, json, until } from './lib.mjs';

const BYO_CONSOLE_KEY = env('C2C_BYO_CONSOLE_KEY');
const CONSOLE_KEY = env('C2C_CONSOLE_KEY');
const OWNER_KEY = env('C2C_OWNER_KEY');
const BYO_SECRET = env('C2C_BYO_SECRET');
const SECRETS = [...JSON.parse(env('C2C_SECRETS')), BYO_SECRET];
const SETTINGS = (t) => `${BASE}/api/c2c/console/tenants/${t}/settings`;
let browser;

before(async () => { browser = await launch(); });
after(async () => { await browser?.close(); });

async function signIn(p, key) {
  await p.goto(`${BASE}/console/`);
  await p.fill('#key', key);
  await p.click('#signin-form button');
  await p.waitForSelector('#nav:not([hidden])');
}

async function go(p, view) {
  await p.click(`#nav a[data-view="${view}"]`);
  await p.waitForSelector(`section[data-view="${view}"] #view-title`);
}

function noSecrets(text, where) {
  for (const s of SECRETS) assert.ok(!text.includes(s), `a secret leaked into ${where}`);
}

async function settingsOf(tenant, key) {
  const r = await json(SETTINGS(tenant), { headers: { 'X-api-key': key } });
  assert.equal(r.status, 200, JSON.stringify(r.body));
  return r.body;
}

test('a byot tenant edits its CRM webhook and LiveKit credentials; LiveKit is asked first', async () => {
  const p = await page(browser);
  await signIn(p, BYO_CONSOLE_KEY);
  await go(p, 'settings');
  assert.match(await p.textContent('#billing-mode'), /^byot/);

  await p.fill('#crm-url', 'http://127.0.0.1:9/initech/v2');
  await p.fill('#crm-key', 'initech-new-outbound-key-42');
  await p.click('#crm-form button[type=submit]');
  await p.waitForSelector('#changes td:has-text("crm_webhook.url")');
  const s = await settingsOf('initech', BYO_CONSOLE_KEY);
  assert.equal(s.tenant.crm_webhook.url, 'http://127.0.0.1:9/initech/v2');
  const change = s.changes.at(-1);
  assert.equal(change.actor, 'console:initech-console');
  assert.ok(change.changes.some((c) => c.field === 'crm_webhook.outbound_key' && c.secret && !('to' in c)));
  assert.ok(!(await p.content()).includes('initech-new-outbound-key-42'), 'a typed secret stays out of the page');

  // A secret LiveKit refuses: a clear error, and nothing changed.
  const before = (await settingsOf('initech', BYO_CONSOLE_KEY)).tenant.revision;
  await p.fill('#lk-secret', 'not-the-secret');
  await p.click('#livekit-form button[type=submit]');
  await p.waitForSelector('#livekit-form .error');
  assert.match(await p.textContent('#livekit-form .error'), /refused ListRooms/);
  assert.equal((await settingsOf('initech', BYO_CONSOLE_KEY)).tenant.revision, before);
  // The right one: saved after LiveKit accepted it.
  await p.fill('#lk-secret', BYO_SECRET);
  await p.click('#livekit-form button[type=submit]');
  await p.waitForSelector('#changes td:has-text("livekit.api_secret (secret replaced)")');
  noSecrets(await p.content(), 'settings');
  await shot(p, 'console-settings-edit');
  // The refused save is the only error the browser logs.
  assert.deepEqual(p.errors, ['console: Failed to load resource: the server responded with a status of 422 (Unprocessable Entity)']);
  await p.context().close();
});

test('a byot tenant adds a trunk and disables it; the trunk list follows', async () => {
  const p = await page(browser);
  await signIn(p, BYO_CONSOLE_KEY);
  await go(p, 'trunks');
  await p.fill('#tr-label', 'own-sip-2');
  await p.fill('#tr-lk', 'ST_own2');
  await p.fill('#tr-prefix', '0');
  await p.fill('#tr-did', '+919876500001');
  await p.fill('#tr-carrier', 'sip:127.0.0.1:5091');
  await p.click('#trunk-save');
  await p.waitForSelector('[data-flip="own-sip-2"]');
  let trunks = (await settingsOf('initech', BYO_CONSOLE_KEY)).tenant.trunks;
  assert.deepEqual(trunks.map((t) => [t.label, t.enabled, t.default]), [['own-sip', true, true], ['own-sip-2', true, false]]);
  await p.click('[data-flip="own-sip-2"]');
  await until('the trunk disabled', 5000, async () => (await settingsOf('initech', BYO_CONSOLE_KEY)).tenant.trunks[1].enabled === false);
  await p.waitForSelector('[data-flip="own-sip-2"]:has-text("Enable")');
  // Editing keeps the label and changes the rest.
  await p.click('[data-edit="own-sip-2"]');
  assert.equal(await p.inputValue('#tr-label'), 'own-sip-2');
  await p.fill('#tr-carrier', 'sip:127.0.0.1:5092');
  await p.click('#trunk-save');
  await until('the carrier changed', 5000, async () => (await settingsOf('initech', BYO_CONSOLE_KEY)).tenant.trunks[1].carrier === 'sip:127.0.0.1:5092');
  trunks = (await settingsOf('initech', BYO_CONSOLE_KEY)).tenant.trunks;
  assert.equal(trunks[1].enabled, false);
  await shot(p, 'console-trunks-edit');
  assert.deepEqual(p.errors, []);
  await p.context().close();
});

test('a managed tenant\'s console changes its webhook only; the owner decides the mode', async () => {
  const p = await page(browser);
  await signIn(p, CONSOLE_KEY);
  await go(p, 'trunks');
  await p.waitForSelector('#trunks-managed');
  assert.equal(await p.$('#trunk-form'), null);
  await go(p, 'settings');
  assert.match(await p.textContent('#billing-mode'), /^managed/);
  assert.equal(await p.$('#livekit-form'), null);
  assert.ok(await p.$('#crm-form'));
  assert.deepEqual(p.errors, []);
  await p.context().close();
  // The API holds the same line, before any LiveKit call is made.
  for (const body of [{ trunks: [] }, { livekit: { url: 'http://127.0.0.1:9', api_key: 'k', api_secret: 's' } }, { limits: { requests_per_second: 1, max_concurrent_calls: 1 } }]) {
    const r = await json(SETTINGS('acme'), { method: 'PATCH', headers: { 'X-api-key': CONSOLE_KEY, 'Content-Type': 'application/json' }, body: JSON.stringify(body) });
    assert.equal(r.status, 403, JSON.stringify(r.body));
    assert.equal(r.body.error.code, 'owner_only');
  }
  const other = await json(SETTINGS('initech'), { headers: { 'X-api-key': CONSOLE_KEY } });
  assert.equal(other.status, 403, 'another tenant\'s settings');

  const o = await page(browser);
  await signIn(o, OWNER_KEY);
  await o.selectOption('#tenant-select', 'initech');
  await go(o, 'settings');
  await o.click('#livekit-remove');
  await o.waitForSelector('#billing-mode:has-text("managed")');
  const s = await settingsOf('initech', OWNER_KEY);
  assert.equal(s.tenant.billing_mode, 'managed');
  assert.ok(s.changes.at(-1).actor.startsWith('owner:'));
  // The platform's call knobs (gateway.toml): the owner's, applied at once.
  await o.fill('#pf-ring_timeout_seconds', '40');
  await o.click('#platform-save');
  await until('the ring timeout saved', 5000, async () => {
    const g = await json(`${BASE}/api/c2c/owner/gateway`, { headers: { 'X-api-key': OWNER_KEY } });
    return g.body.settings.calls.ring_timeout_seconds === 40;
  });
  await o.waitForSelector('#pf-ring_timeout_seconds[value="40"]');
  noSecrets(await o.content(), 'owner settings');
  assert.deepEqual(o.errors, []);
  await o.context().close();
});
