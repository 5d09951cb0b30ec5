// The console's view of an anchored call's media, in headless Chromium, against the real
// gateway with its SIP edge anchoring acme's trunk (`media = "anchor"`, dead air after
// 1 s), the bundled simulator dialling through that edge, and sipp as the carrier: it
// answers, then sends no audio. Run by gateway/tests/sip.rs
// (`the_console_shows_an_anchored_calls_media_in_chromium`), which also opts acme's CRM
// in to the extended webhook (`media_in_payload`).
// Only livekit-client's Room is a stand-in (fake-room.mjs: the simulator has no WebRTC);
// the agent's join and publish reach the simulator, so /connect dials for real.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { BASE, env, launch, page, shot, until } from './lib.mjs';
import { withFakeRoom } from './fake-room.mjs';

const CONSOLE_KEY = env('C2C_CONSOLE_KEY');
const NUMBER = env('C2C_NUMBER');
const SECRETS = JSON.parse(env('C2C_SECRETS'));
let browser;

before(async () => { browser = await launch(); });
after(async () => { await browser?.close(); });

/** The `dl.kv` under `sel` as an object (term -> text). */
const kv = (p, sel) => p.$eval(sel, (root) => {
  const out = {};
  for (const dt of root.querySelectorAll('dt')) out[dt.textContent] = dt.nextElementSibling.textContent;
  return out;
});

async function signIn(p) {
  await p.goto(`${BASE}/console/`);
  await p.getByLabel('API key').fill(CONSOLE_KEY);
  await p.keyboard.press('Enter');
  await p.waitForSelector('#nav:not([hidden])');
}

test('Sandbox: an anchored call ended by dead air shows its media and the extended webhook preview', async () => {
  const p = await page(browser);
  await signIn(p);
  await p.waitForFunction(() => !!window.C2C);
  await withFakeRoom(p);
  await p.click('#nav a[data-view="sandbox"]');
  await p.waitForSelector('section[data-view="sandbox"] #view-title');
  await p.fill('#sb-number', NUMBER);
  await p.click('#sb-place');
  await until('/connect sent', 10000, async () => p.seq.some((s) => s.what === 'POST connect'));
  // The carrier answers through the edge; a second later the edge hears dead air and the
  // gateway ends the call. The preview comes with the end, the media block after it,
  // once LiveKit's BYE closed the dialog and the relay reported.
  await p.waitForSelector('#webhook-preview', { timeout: 30000 });
  await p.waitForSelector('#sandbox-media', { timeout: 15000 });
  const trunk = await kv(p, '#sandbox-trunk > dl');
  assert.equal(trunk['Disconnect reason'], 'media_timeout', JSON.stringify(trunk));
  assert.match(trunk['Gateway status'], /ENDED · ANSWERED/);
  const media = await kv(p, '#sandbox-media');
  assert.equal(media['Dead air (media timeout)'], 'yes: the call was ended', JSON.stringify(media));
  assert.match(media['From the customer (carrier)'], /^0 packets · 0% lost/, JSON.stringify(media));
  assert.equal(media['Early media'], 'no');
  assert.equal(media['Third-party packets dropped'], '0');
  // The preview is the body acme's CRM gets: the contract's fields, then media. Its
  // media may still be null if the report came after the preview was drawn; the API
  // has it by now.
  // The call this page placed, as its log recorded the click2call answer.
  const log = await p.$$eval('#sandbox-log li', (li) => li.map((x) => x.textContent));
  const placed = log.map((l) => /click2call: (c2c_[0-9a-f]{32})$/.exec(l)).find(Boolean);
  assert.ok(placed, log.join(' | '));
  const preview = await p.textContent('#webhook-preview');
  const body = JSON.parse(preview.slice(preview.indexOf('{')));
  assert.deepEqual(Object.keys(body), ['call_id', 'case_id', 'customer_crm_id', 'phone_to', 'phone_from', 'call_status', 'duration_seconds', 'agent_id', 'media']);
  assert.equal(body.phone_to, NUMBER);
  assert.equal(body.call_id, placed[1]);
  await until('the preview with the report', 5000, async () => {
    const t = await p.textContent('#webhook-preview');
    return JSON.parse(t.slice(t.indexOf('{'))).media !== null;
  });
  const after = await p.textContent('#webhook-preview');
  assert.equal(JSON.parse(after.slice(after.indexOf('{'))).media.media_timeout, true);
  const html = await p.content();
  for (const s of SECRETS) assert.ok(!html.includes(s), 'a policy secret reached the page');
  await shot(p, 'console-sandbox-media');
  assert.deepEqual(p.errors, [], p.errors.join('\n'));
  await p.context().close();
});

test('Analytics: the anchored trunk\'s media row counts the call and its dead air', async () => {
  const p = await page(browser);
  await signIn(p);
  await p.click('#nav a[data-view="analytics"]');
  await p.waitForSelector('#analytics-media table');
  const rows = await p.$$eval('#analytics-media tbody tr', (trs) => trs.map((tr) => [...tr.children].map((td) => td.textContent)));
  assert.equal(rows.length, 1, JSON.stringify(rows));
  const [trunk, calls, early, oneWay, deadAir] = rows[0];
  assert.equal(trunk, 'airtel-mum');
  assert.equal(calls, '1');
  assert.equal(early, '0%');
  assert.equal(oneWay, '0%');
  assert.equal(deadAir, '1');
  await shot(p, 'console-analytics-media');
  assert.deepEqual(p.errors, [], p.errors.join('\n'));
  await p.context().close();
});
