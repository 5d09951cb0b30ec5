// Shared helpers of the browser tests: the environment the Rust harness passes
// (gateway + simulator URLs, keys), headless Chromium via playwright-core, console
// error capture, screenshots.
import { chromium } from 'playwright-core';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';

export const env = (name) => {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is not set: run these tests through gateway/tests/console.rs (cargo test -p c2c-gateway --test console)`);
  return v;
};

export const BASE = env('C2C_BASE');
export const SIM = env('C2C_SIM');
export const SHOTS = env('C2C_SHOTS');
mkdirSync(SHOTS, { recursive: true });

export async function launch() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    args: [
      '--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
      '--use-fake-ui-for-media-stream', '--use-fake-device-for-media-stream',
    ],
  });
}

/** A page that records console errors, page errors and CSP violations. */
export async function page(browser, opts) {
  const context = await browser.newContext(opts);
  const p = await context.newPage();
  p.errors = [];
  p.on('console', (m) => { if (m.type() === 'error') p.errors.push(`console: ${m.text()}`); });
  p.on('pageerror', (e) => p.errors.push(`pageerror: ${e.message}`));
  return p;
}

export async function shot(p, name) {
  await p.screenshot({ path: join(SHOTS, `${name}.png`), fullPage: true });
}

export async function json(url, init) {
  const r = await fetch(url, init);
  const text = await r.text();
  let body = null;
  try { body = JSON.parse(text); } catch (_) { body = text; }
  return { status: r.status, body, headers: r.headers };
}

/** click2call as the CRM backend does (server-side, with the calls key). */
export async function click2call(number, key, agentId = 'agent-42') {
  const r = await json(`${BASE}/api/c2c/click2call`, {
    method: 'POST',
    headers: { 'X-api-key': key, 'Content-Type': 'application/json' },
    body: JSON.stringify({ case_id: 'case-1', customer_number: number, agent_id: agentId, customer_crm_id: 'cust-1' }),
  });
  if (r.status !== 200) throw new Error(`click2call ${r.status}: ${JSON.stringify(r.body)}`);
  return r.body;
}

export async function until(what, timeoutMs, f) {
  const end = Date.now() + timeoutMs;
  let last;
  while (Date.now() < end) {
    last = await f();
    if (last) return last;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`timed out waiting for ${what}`);
}
