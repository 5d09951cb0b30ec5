// Agents: the tenant's registered agents with their telephony switch and live
// availability, and the audit trail of registry changes. Availability is live: the page
// holds a supervisor presence session (the same client as C2C.presence in
// /js/c2c-client.js), which pushes every agent's change without a reload.
import { api, qs } from '../api.js';
import { h, mount, table, errorBox, toast } from '../dom.js';
import { connectPresence } from '../../presence.js';

const PAGE_SIZE = 50;
const AVAILABILITY_LABELS = { available: 'Available', away: 'Away', offline: 'Offline' };
const LIVE_ON = 'Live: availability updates as agents change it.';

// An audit entry's time: `at` (RFC 3339), or `at_ms` from a gateway that sends that.
const stamp = (e) => new Date(e.at ?? e.at_ms).getTime() || 0;
const when = (e) => (stamp(e) ? new Date(stamp(e)).toISOString().replace('T', ' ').slice(0, 19) : String(e.at ?? ''));
const FIELD_LABELS = { telephony_enabled: 'Telephony', registered: 'Registered', name: 'Name' };
const shown = (field, v) => {
  if (typeof v === 'boolean') return field === 'telephony_enabled' ? (v ? 'on' : 'off') : (v ? 'yes' : 'no');
  return v === null || v === undefined ? '—' : String(v);
};
const change = (e) => `${FIELD_LABELS[e.field] || e.field}: ${shown(e.field, e.old)} → ${shown(e.field, e.new)}`;

/** One agent's row: its cells stay the same elements, updated in place. */
function agentRow(agent, onToggle) {
  const id = agent.agent_id;
  const availability = h('span', { 'data-agent': id, 'data-field': 'availability' });
  const onCall = h('span', { 'data-agent': id, 'data-field': 'on_call' });
  const telephony = h('input', {
    type: 'checkbox', role: 'switch', class: 'switch', 'data-agent': id, 'data-field': 'telephony',
    'aria-label': `Telephony for ${agent.name} (${id})`,
  });
  const telLabel = h('span', { 'aria-hidden': 'true' });
  telephony.addEventListener('change', () => onToggle(row));
  const row = {
    id,
    agent: { ...agent },
    cells: [agent.name, h('code', {}, id), h('span', { class: 'switch-cell' }, telephony, telLabel), availability, onCall],
    els: { availability, onCall, telephony, telLabel },
  };
  paint(row);
  return row;
}

/** Shows the row's agent as it is now. */
function paint(row) {
  const { agent, els } = row;
  els.telephony.checked = !!agent.telephony_enabled;
  els.telLabel.textContent = agent.telephony_enabled ? 'on' : 'off';
  const a = AVAILABILITY_LABELS[agent.availability] ? agent.availability : 'offline';
  els.availability.dataset.availability = a;
  els.availability.className = `badge avail-${a}`;
  els.availability.textContent = AVAILABILITY_LABELS[a];
  els.onCall.textContent = agent.on_call ? 'on a call' : '—';
}

export default async function agents(root, ctx) {
  const tenantPath = `/api/c2c/console/tenants/${encodeURIComponent(ctx.tenant)}`;
  const rows = new Map(); // agent_id -> row, in list order
  let cursor = null;
  let presence = null;
  let left = false; // the view was left: a session that connects late is closed at once

  const listEl = h('div', { id: 'agents-list' });
  const more = h('button', { type: 'button', id: 'agents-more', class: 'secondary', hidden: true }, 'Load more');
  const msg = h('div', { 'aria-live': 'assertive' });
  const live = h('p', { id: 'agents-live', 'data-live': 'connecting', role: 'status' }, 'Connecting live availability…');
  const audit = h('div', { id: 'agents-audit' }, h('p', { class: 'empty' }, 'Loading…'));

  const setLive = (state, text) => {
    live.dataset.live = state;
    live.textContent = text;
  };

  const renderList = () => mount(listEl, table('Registered agents', ['Name', 'Agent id', 'Telephony', 'Availability', 'On call'],
    [...rows.values()].map((r) => r.cells),
    'No agents registered yet. Your CRM backend registers one with PUT /api/c2c/agents/{agent_id} and {"name", "telephony_enabled"}.'));

  async function loadAudit() {
    try {
      const r = await api(`${tenantPath}/agents/audit`);
      const newestFirst = (r.entries || []).slice().sort((x, y) => stamp(y) - stamp(x));
      mount(audit, table('Agent audit trail', ['When (UTC)', 'Agent', 'Change', 'Key'],
        newestFirst.map((e) => [when(e), h('code', {}, e.agent_id), change(e), e.key_id]),
        'No changes yet.'));
    } catch (e) {
      mount(audit, errorBox(`Could not load the audit trail: ${e.message}`));
    }
  }

  async function toggle(row) {
    const input = row.els.telephony;
    const enabled = input.checked;
    input.disabled = true;
    mount(msg);
    try {
      const a = await api(`${tenantPath}/agents/${encodeURIComponent(row.id)}/telephony`, { method: 'POST', body: { enabled } });
      Object.assign(row.agent, a);
      paint(row);
      toast(`Telephony ${enabled ? 'on' : 'off'} for ${row.agent.name}.`);
      loadAudit();
    } catch (e) {
      paint(row); // back to what the gateway has
      mount(msg, errorBox(`Could not turn telephony ${enabled ? 'on' : 'off'} for ${row.id}: ${e.message}`));
    } finally {
      input.disabled = false;
    }
  }

  async function loadPage() {
    const r = await api(`${tenantPath}/agents${qs({ limit: PAGE_SIZE, cursor })}`);
    for (const a of r.agents || []) rows.set(a.agent_id, agentRow(a, toggle));
    cursor = r.next_cursor || null;
    more.hidden = !cursor;
    renderList();
  }

  more.addEventListener('click', async () => {
    more.disabled = true;
    try {
      await loadPage();
    } catch (e) {
      mount(msg, errorBox(`Could not load more agents: ${e.message}`));
    } finally {
      more.disabled = false;
    }
  });

  // Live state from the supervisor session. Agents not on the listed pages are skipped:
  // they show up with their state when their page is loaded.
  const update = (agentId, fields) => {
    const row = rows.get(agentId);
    if (!row) return;
    Object.assign(row.agent, fields);
    paint(row);
  };
  const onSnapshot = (e) => e.agents.forEach((a) => update(a.agentId, {
    availability: a.availability, on_call: a.onCall, telephony_enabled: a.telephonyEnabled,
  }));
  const onAvailability = (e) => update(e.agentId, {
    availability: e.availability, on_call: e.onCall, ...(e.reason === 'telephony_disabled' ? { telephony_enabled: false } : {}),
  });

  const mintSession = () => api(`${tenantPath}/presence-session`, { method: 'POST', body: {} });

  async function goLive() {
    try {
      const s = await mintSession();
      const p = await connectPresence({ token: s.token, url: s.ws_url, fetchToken: mintSession });
      if (left) { p.disconnect(); return; }
      presence = p;
      p.on('agents', onSnapshot);
      p.on('availability', onAvailability);
      p.on('reconnecting', () => setLive('reconnecting', 'Live availability: reconnecting…'));
      p.on('ready', () => setLive('on', LIVE_ON));
      p.on('closed', (e) => setLive('off', `Live availability stopped (${e.reason}); reload the page to resume.`));
      setLive('on', LIVE_ON);
    } catch (e) {
      if (!left) setLive('off', `Live availability is unavailable: ${e.message}`);
    }
  }

  await loadPage();
  mount(root,
    h('h2', { id: 'view-title' }, 'Agents'),
    h('p', { class: 'lead' }, 'The people who place calls from a browser, as your CRM registered them. Only an agent with telephony on can become available; turning it off makes the agent offline at once.'),
    h('div', { class: 'card' },
      h('h3', {}, 'Registered agents'),
      live, msg, listEl, more),
    h('div', { class: 'card' },
      h('h3', {}, 'Audit trail'),
      h('p', { class: 'lead' }, 'Registry changes, newest first, with the id of the key that made each (never the key itself).'),
      audit));
  loadAudit();
  goLive();
  return () => {
    left = true;
    if (presence) presence.disconnect();
  };
}
