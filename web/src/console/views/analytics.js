// Analytics: outcomes from call records (GET /api/c2c/analytics), filtered by date
// range and trunk, drawn as charts plus the same numbers as tables. Inbound calls count
// in every total; those nobody answered are MISSED, and the inbound share is shown.
import { api, qs } from '../api.js';
import { h, mount, table, errorBox } from '../dom.js';
import { barChart, stackedByDay, legend } from './charts.js';

const iso = (d) => d.toISOString().slice(0, 10);

// Why unanswered calls ended (`failures_by_cause`), in display order. An agent
// cancelling is a terminal webhook too, but not a carrier's or LiveKit's failure.
const CAUSES = [
  ['customer', 'Customer: busy, declined, rang out'],
  ['carrier', 'Carrier or trunk failure'],
  ['livekit', 'LiveKit could not place the call'],
  ['agent_cancelled', 'Agent hung up before the answer'],
  ['agent_dropped', "Agent's browser went away"],
  ['never_connected', 'Browser never called /connect'],
  ['gateway', 'Dial interrupted by a gateway restart'],
];

export default async function analytics(root, ctx) {
  const today = new Date();
  const weekAgo = new Date(today.getTime() - 6 * 86400000);
  const out = h('div', { id: 'analytics-result', 'aria-live': 'polite' });
  const trunkSel = h('select', { id: 'an-trunk', name: 'trunk' }, h('option', { value: '' }, 'All trunks'),
    ctx.overview.trunks.map((t) => h('option', { value: t.label }, t.label)));
  const form = h('form', { id: 'analytics-form', novalidate: true },
    h('div', { class: 'row' },
      h('div', {}, h('label', { for: 'an-from' }, 'From (UTC)'), h('input', { id: 'an-from', name: 'from', type: 'date', value: iso(weekAgo) })),
      h('div', {}, h('label', { for: 'an-to' }, 'To (UTC)'), h('input', { id: 'an-to', name: 'to', type: 'date', value: iso(today) })),
      h('div', {}, h('label', { for: 'an-trunk' }, 'Trunk'), trunkSel),
      h('div', {}, h('button', { type: 'submit' }, 'Apply'))));
  const load = async () => {
    mount(out, h('p', { class: 'empty' }, 'Loading…'));
    try {
      const a = await api('/api/c2c/analytics' + qs({ tenant: ctx.tenant, from: form.from.value, to: form.to.value, trunk: trunkSel.value }));
      show(out, a);
    } catch (e) {
      mount(out, errorBox(e.message));
    }
  };
  form.addEventListener('submit', (ev) => { ev.preventDefault(); load(); });
  mount(root,
    h('h2', { id: 'view-title' }, 'Analytics'),
    h('p', { class: 'lead' }, 'Outcomes from call records. Filter by date range and trunk.'),
    h('div', { class: 'card' }, form),
    out);
  await load();
}

function show(out, a) {
  const o = a.outcomes;
  const stat = (label, v, id) => h('div', { class: 'stat', 'data-stat': id }, h('b', {}, v), label);
  const rate = a.answer_rate === null || a.answer_rate === undefined ? '—' : `${Math.round(a.answer_rate * 100)}%`;
  const inbound = a.inbound || 0;
  const share = a.total ? `${Math.round((inbound / a.total) * 100)}%` : '—';
  const codes = Object.entries(a.failures_by_sip_code || {}).sort(([x], [y]) => x.localeCompare(y));
  const byCause = a.failures_by_cause || {};
  const causes = CAUSES.filter(([k]) => byCause[k]).map(([k, label]) => [k, byCause[k], label]);
  const days = a.by_day || [];
  const pct = (r) => `${Math.round(r * 100)}%`;
  const media = (a.by_trunk || []).filter((t) => t.media && t.media.calls > 0)
    .map((t) => [t.trunk, t.media.calls, pct(t.media.early_media_rate), pct(t.media.one_way_audio_rate),
      t.media.media_timeouts, t.media.median_jitter_ms === null ? '> 200 ms' : `≤ ${t.media.median_jitter_ms} ms`]);
  const refused = Object.entries(a.dlt_refusals || {}).sort(([x], [y]) => x.localeCompare(y));
  const dlt = h('div', { class: 'card', id: 'analytics-dlt' },
    h('h3', {}, 'Refused by DLT rules'),
    table('Calls refused by DLT rules', ['Rule', 'Calls'], refused.map(([rule, n]) => [h('code', {}, rule), n]),
      'No call refused by a DLT rule in this range (on this gateway node).'));
  if (!a.total) {
    mount(out, h('div', { class: 'card' }, h('p', { class: 'empty', id: 'analytics-empty' }, `No calls between ${a.from} and ${a.to}${a.trunk ? ' on ' + a.trunk : ''}. Place one from the Sandbox tab.`)), dlt);
    return;
  }
  mount(out,
    h('div', { class: 'card' },
      h('div', { class: 'stats' },
        stat('calls', a.total, 'total'), stat('answered', o.ANSWERED, 'answered'), stat('not answered', o.NOT_ANSWERED, 'not_answered'),
        stat('failed', o.FAILED, 'failed'), stat('missed (inbound)', o.MISSED || 0, 'missed'), stat('in progress', o.IN_PROGRESS, 'in_progress'),
        stat('answer rate', rate, 'answer_rate'), stat(`inbound (${share} of calls)`, inbound, 'inbound'))),
    h('div', { class: 'card' },
      h('h3', {}, 'Failures by SIP code'),
      codes.length
        ? [barChart('chart-sip', 'Failures by SIP code', codes, 'c-code'),
          table('Failures by SIP code', ['SIP code', 'Calls'], codes, '')]
        : h('p', { class: 'empty' }, 'No failures with a SIP code in this range.')),
    h('div', { class: 'card' },
      h('h3', {}, 'Unanswered calls by cause'),
      causes.length
        ? [barChart('chart-causes', 'Unanswered calls by cause', causes.map(([k, v]) => [k, v]), 'c-cause'),
          table('Unanswered calls by cause', ['Cause', 'Calls'], causes.map(([, v, label]) => [label, v]), '')]
        : h('p', { class: 'empty' }, 'Every call in this range was answered.')),
    h('div', { class: 'card', id: 'analytics-media' },
      h('h3', {}, 'Media on anchored trunks'),
      table('Media on anchored trunks', ['Trunk', 'Calls measured', 'Early media', 'One-way audio', 'Dead air (ended)', 'Median jitter'],
        media, 'No anchored calls in this range (trunks with media = "anchor" are measured by the SIP edge).')),
    dlt,
    h('div', { class: 'card' },
      h('h3', {}, 'By day'),
      legend(),
      stackedByDay('chart-days', 'Outcomes by day', days),
      table('Outcomes by day', ['Date', 'Total', 'Inbound', 'Answered', 'Not answered', 'Failed', 'Missed', 'In progress'],
        days.filter((d) => d.total > 0).map((d) => [d.date, d.total, d.inbound || 0, d.answered, d.not_answered, d.failed, d.missed || 0, d.in_progress]), 'No calls on any day.')));
}
