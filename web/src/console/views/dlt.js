// DLT: everything Indian telecom rules decide about the tenant's outbound calls
// (docs/dlt.md): the outbound switch and its audit trail, the onboarding steps that lead
// to it, the per-call rules in force (trunk categories, caller-ID series, calling hours),
// the DND and consent lists with their size and age, and this node's latest refusals.
import { h, mount, kv, table } from '../dom.js';
import { dltCard } from './settings.js';

const when = (ms) => new Date(ms).toISOString().replace('T', ' ').slice(0, 19);
const age = (ms) => {
  const s = Math.max(0, Math.round((Date.now() - ms) / 1000));
  if (s < 3600) return `${Math.round(s / 60)} min`;
  if (s < 86400 * 2) return `${Math.round(s / 3600)} h`;
  return `${Math.round(s / 86400)} days`;
};

/** The onboarding a tenant goes through before its first outbound call. */
export function onboarding() {
  return h('ol', { id: 'dlt-onboarding' },
    h('li', {}, h('strong', {}, 'Register as a Principal Entity'), ' on a DLT portal (for example Jio Trueconnect) with your business documents. You get a Principal Entity ID.'),
    h('li', {}, h('strong', {}, 'Bind your telemarketer'), ': on the portal, bind your Principal Entity to this platform as the telemarketer (TM) that places your calls. Calls that are not bound to a verified Principal Entity are rejected by the carrier with an error that does not say why.'),
    h('li', {}, h('strong', {}, 'Send us your Principal Entity ID'), ' and the binding reference. We verify the PE–TM binding by hand.'),
    h('li', {}, h('strong', {}, 'Outbound enable'), ': after verifying, the platform owner turns outbound calling on for your tenant. Until then every call attempt is refused with ', h('code', {}, '403 dlt_pending'), ' and the agent widget shows "DLT pending".'),
    h('li', {}, h('strong', {}, 'Declare what your calls are'), ': each trunk carries promotional, service or transactional calls. Promotional calls present a 140-series number, are scrubbed against your do-not-disturb list and go out only within calling hours; service and transactional calls present your registered numbers (1600 series for government bodies, 1601 for RBI/SEBI/PFRDA/IRDAI-regulated entities).'));
}

function listRow(name, l) {
  if (!l) return [name, 'none configured'];
  if (l.numbers === null || l.numbers === undefined) {
    return [name, h('span', { class: 'badge bad' }, 'not read'), ` ${l.error || ''} — promotional calls are refused until it is.`];
  }
  const text = `${l.numbers.toLocaleString('en-IN')} numbers, file from ${when(l.modified_ms)} UTC (${age(l.modified_ms)} old), read ${when(l.loaded_at_ms)} UTC`;
  return [name, l.error ? h('span', {}, text, ' — ', h('span', { class: 'badge bad' }, 'last reload failed'), ` ${l.error}`) : text];
}

export default async function dlt(root, ctx) {
  const o = ctx.overview;
  const r = o.dlt.rules;
  mount(root,
    h('h2', { id: 'view-title' }, 'DLT'),
    h('p', { class: 'lead' }, `What Indian telecom rules (TRAI TCCCPR 2018, DoT numbering) decide about ${o.tenant.name}'s outbound calls. The gateway refuses a call that breaks them before it reaches the carrier, with an error that says exactly why.`),
    dltCard(ctx),
    h('div', { class: 'card', id: 'dlt-steps' },
      h('h3', {}, 'Onboarding'),
      onboarding()),
    h('div', { class: 'card', id: 'dlt-rules' },
      h('h3', {}, 'Rules in force'),
      kv([
        ['Entity class', r.entity_class],
        ['Registered numbers', r.registered_numbers.join(', ') || 'none'],
        ['Calling hours (promotional)', `${r.calling_hours} IST (${r.calling_hours_source === 'tenant' ? 'tenant policy' : 'platform default'})`],
        ['Caller-ID series', `promotional ${r.promotional_series.join('/')}, government ${r.government_series.join('/')}, financial ${r.financial_series.join('/')}`],
      ]),
      table('Trunk categories', ['Trunk', 'Category', 'Default caller ID', 'Enabled'],
        o.trunks.map((t) => [t.label, t.category, t.default_did, t.enabled ? 'yes' : 'no']),
        'No trunks configured.')),
    h('div', { class: 'card', id: 'dlt-lists' },
      h('h3', {}, 'Do-not-disturb scrubbing'),
      kv([listRow('DND list', r.dnd), listRow('Consent list', r.consent)].map((row) => [row[0], row.length > 2 ? h('span', {}, row[1], row[2]) : row[1]]))),
    h('div', { class: 'card', id: 'dlt-refusals' },
      h('h3', {}, 'Recent refusals'),
      table('Recent DLT refusals', ['When (UTC)', 'Rule', 'Category', 'Trunk', 'Caller ID', 'Number', 'Where', 'Why'],
        r.recent_refusals.map((x) => [when(x.at_ms), h('code', {}, x.rule), x.category, x.trunk, x.caller_id, x.number, x.at, x.message]),
        'No call refused by a DLT rule on this gateway since it started.'),
      h('p', { class: 'empty' }, 'The latest 50 on this gateway node. The full record of a period: c2c-gateway dlt report --tenant ID --from DAY --to DAY (CSV).')));
}
