// Billing: the tenant's billing mode (inferred from its credentials), its wallet balance
// in rupees and paise, what is available and held by calls in progress, minutes and spend
// by day (analytics), the ledger page by page, a CSV download, and (owner only) a form
// to post a top-up, adjustment or refund. Money is integer paise end to end: the rupee
// amount typed in the form is parsed as text, never through a float.
import { api, qs, store, ApiError } from '../api.js';
import { h, mount, kv, table, errorBox, toast } from '../dom.js';

const PAGE = 50;
const KINDS = { top_up: 'Top-up', call_charge: 'Call charge', adjustment: 'Adjustment', refund: 'Refund' };

/** Paise as "₹1,234.50" (en-IN grouping), exactly. */
export function rupees(paise) {
  const neg = paise < 0;
  const p = BigInt(Math.abs(paise));
  const whole = (p / 100n).toLocaleString('en-IN');
  const frac = String(p % 100n).padStart(2, '0');
  return `${neg ? '−' : ''}₹${whole}.${frac}`;
}

/** "1234.5" or "-20" rupees as integer paise, or null when it is not a money amount. */
export function toPaise(text) {
  const m = /^\s*(-)?(\d{1,11})(?:\.(\d{1,2}))?\s*$/.exec(text);
  if (!m) return null;
  const paise = Number(m[2]) * 100 + Number((m[3] || '0').padEnd(2, '0'));
  return m[1] ? -paise : paise;
}

function when(ms) {
  return new Date(ms).toISOString().replace('T', ' ').slice(0, 19);
}

/** Downloads the statement page as CSV: fetched with the key in a header, never a URL. */
async function downloadCsv(tenant) {
  const r = await fetch(`/api/c2c/wallet/statement.csv${qs({ tenant, limit: 1000 })}`, {
    headers: { 'X-api-key': store.key }, credentials: 'omit', cache: 'no-store',
  });
  if (!r.ok) throw new ApiError(r.status, 'http_' + r.status, `CSV export failed (HTTP ${r.status})`);
  const url = URL.createObjectURL(await r.blob());
  const a = h('a', { href: url, download: `wallet-${tenant}.csv`, hidden: true });
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}

/** The last `days` UTC days as analytics' `from`/`to`. */
function lastDays(days) {
  const day = (d) => d.toISOString().slice(0, 10);
  const to = new Date();
  return { from: day(new Date(to.getTime() - (days - 1) * 86_400_000)), to: day(to) };
}

/** Minutes and spend per day (the last 30, newest first, days without calls left out). */
function spendCard(a, managed) {
  const mins = (s) => (s / 60).toFixed(1);
  const days = a.by_day.filter((d) => d.total > 0).reverse();
  return h('div', { class: 'card', id: 'spend' },
    h('h3', {}, managed ? 'Spend by day (last 30 days)' : 'Minutes by day (last 30 days, metered)'),
    kv([
      ['Talk time', h('span', { id: 'spend-talk', 'data-seconds': String(a.talk_seconds) }, `${mins(a.talk_seconds)} min`)],
      managed ? ['Spent', h('strong', { id: 'spend-total', 'data-paise': String(a.spend_paise) }, rupees(a.spend_paise))] : null,
    ].filter(Boolean)),
    table(managed ? 'Spend by day' : 'Minutes by day',
      managed ? ['Day (UTC)', 'Calls', 'Answered', 'Talk (min)', 'Spent'] : ['Day (UTC)', 'Calls', 'Answered', 'Talk (min)'],
      days.map((d) => [d.date, String(d.total), String(d.answered), mins(d.talk_seconds), managed ? rupees(d.spend_paise) : null].filter((c) => c !== null)),
      'No calls in the last 30 days.'),
    table(managed ? 'Spend by trunk' : 'Minutes by trunk',
      managed ? ['Trunk', 'Calls', 'Talk (min)', 'Spent'] : ['Trunk', 'Calls', 'Talk (min)'],
      a.by_trunk.map((t) => [t.trunk, String(t.total), mins(t.talk_seconds), managed ? rupees(t.spend_paise) : null].filter((c) => c !== null)),
      'No trunks.'));
}

export default async function billing(root, ctx) {
  const load = (after) => api(`/api/c2c/wallet${qs({ tenant: ctx.tenant, after, limit: PAGE })}`);
  const [w, usage] = await Promise.all([
    load(0),
    api(`/api/c2c/analytics${qs({ tenant: ctx.tenant, ...lastDays(30) })}`),
  ]);
  const held = w.holds.reduce((sum, x) => sum + x.amount_paise, 0);
  const rows = [];
  const body = h('div', { id: 'statement' });
  const more = h('button', { type: 'button', id: 'statement-more', class: 'secondary' }, 'Load more');
  let next = w.next_after;
  const draw = () => {
    mount(body, table('Wallet statement', ['When (UTC)', 'Entry', 'Kind', 'Amount', 'Balance after', 'By', 'Reason', 'Call'],
      rows.map((e) => [when(e.at_ms), h('code', {}, e.id), KINDS[e.kind] || e.kind,
        h('span', { class: e.amount_paise < 0 ? 'neg' : 'pos' }, rupees(e.amount_paise)),
        rupees(e.balance_after_paise), e.actor, e.reason, e.call_id ? h('code', {}, e.call_id) : '']),
      'No entries yet: the wallet is empty until the platform owner posts a top-up.'));
    more.hidden = next == null;
  };
  rows.push(...w.statement);
  draw();
  more.addEventListener('click', async () => {
    try {
      const page = await load(next);
      rows.push(...page.statement);
      next = page.next_after;
      draw();
    } catch (e) {
      body.append(errorBox(e.message));
    }
  });
  const csv = h('button', { type: 'button', id: 'statement-csv', class: 'secondary' }, 'Download CSV');
  csv.addEventListener('click', () => downloadCsv(ctx.tenant).catch((e) => toast(e.message)));
  const managed = w.billing_mode === 'managed';
  mount(root,
    h('h2', { id: 'view-title' }, 'Billing'),
    h('p', { class: 'lead' }, managed
      ? 'Managed tenant: calls use the platform\'s telephony and are paid from this wallet, kept in paise.'
      : 'Bring-your-own telephony: this tenant uses its own LiveKit project and trunks. Its minutes are metered, not paid from a wallet.'),
    h('div', { class: 'card' },
      h('h3', {}, 'Wallet'),
      kv([
        ['Billing mode', h('span', { id: 'billing-mode', class: managed ? 'badge ok' : 'badge' }, managed ? 'managed' : 'bring-your-own (BYOT)')],
        ['Balance', h('strong', { id: 'wallet-balance', 'data-paise': String(w.balance_paise) }, rupees(w.balance_paise))],
        ['Available', h('span', { id: 'wallet-available', 'data-paise': String(w.available_paise) }, rupees(w.available_paise))],
        ['Held by calls in progress', h('span', { id: 'wallet-held', 'data-paise': String(held) }, `${rupees(held)} (${w.holds.length} call${w.holds.length === 1 ? '' : 's'})`)],
        ['Calls paid from this wallet', h('span', { id: 'charge-calls' }, w.charge_calls ? 'yes' : 'not yet (billing.charge_calls is off)')],
        ['Ledger entries', String(w.entries)],
      ])),
    managed ? h('div', { class: 'card' },
      h('h3', {}, 'Rate card'),
      table('Rate card', ['Trunk', 'Rate', 'Per minute', 'From'],
        w.rate_card.map((r) => [r.trunk + (r.enabled ? '' : ' (disabled)'),
          `${rupees(r.paise_per_pulse)} per ${r.pulse_seconds === 1 ? 'second' : `${r.pulse_seconds} s`}`,
          rupees(Math.ceil(60 / r.pulse_seconds) * r.paise_per_pulse),
          r.source === 'trunk' ? 'trunk' : 'platform default']),
        'No trunks: calls cannot be placed.'),
      w.min_call_paise != null ? h('p', { class: 'empty', id: 'min-call' }, `A call is dialled only when the wallet holds at least ${rupees(w.min_call_paise)} (the minimum call on the default trunk).`) : null) : null,
    spendCard(usage, managed),
    h('div', { class: 'card' },
      h('h3', {}, 'Statement'),
      body,
      h('div', { class: 'row' }, more, csv)),
    managed && ctx.session.role === 'owner' ? entryCard(ctx) : null);
}

/** Owner: post a top-up, adjustment or refund; a retried click posts it once. */
function entryCard(ctx) {
  const msg = h('div', { 'aria-live': 'polite' });
  // One request id per filled form: a double click or a retry after a timeout cannot
  // move the money twice.
  let requestId = `console-${crypto.randomUUID()}`;
  const form = h('form', { id: 'wallet-form', novalidate: true },
    h('div', { class: 'row' },
      h('div', {}, h('label', { for: 'wl-kind' }, 'Kind'),
        h('select', { id: 'wl-kind', name: 'kind' },
          h('option', { value: 'top_up' }, 'Top-up'),
          h('option', { value: 'adjustment' }, 'Adjustment (either sign)'),
          h('option', { value: 'refund' }, 'Refund'))),
      h('div', {}, h('label', { for: 'wl-amount' }, 'Amount (₹)'),
        h('input', { id: 'wl-amount', name: 'amount', inputmode: 'decimal', required: true, placeholder: '5000.00' })),
      h('div', {}, h('label', { for: 'wl-reason' }, 'Reason'),
        h('input', { id: 'wl-reason', name: 'reason', required: true, placeholder: 'NEFT UTR …' }))),
    h('button', { type: 'submit', id: 'wl-post' }, 'Post entry'),
    msg);
  form.addEventListener('input', () => { requestId = `console-${crypto.randomUUID()}`; });
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const paise = toPaise(form.amount.value);
    if (paise === null) { mount(msg, errorBox('Enter an amount in rupees, like 5000 or 1234.50.')); form.amount.focus(); return; }
    const reason = form.reason.value.trim();
    if (!reason) { mount(msg, errorBox('Say why the money moves.')); form.reason.focus(); return; }
    try {
      const r = await api(`/api/c2c/owner/tenants/${encodeURIComponent(ctx.tenant)}/wallet/entries`,
        { method: 'POST', body: { kind: form.kind.value, amount_paise: paise, reason, request_id: requestId } });
      toast(`${KINDS[r.entry.kind]} of ${rupees(r.entry.amount_paise)} posted; balance ${rupees(r.balance_paise)}.`);
      // Draw the view again with the new balance and statement.
      window.dispatchEvent(new HashChangeEvent('hashchange'));
    } catch (e) {
      mount(msg, errorBox(e.message));
    }
  });
  return h('div', { class: 'card' }, h('h3', {}, 'Owner: post an entry'), form);
}
