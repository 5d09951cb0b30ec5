// Sandbox, inbound: a customer calls one of the tenant's numbers. The bundled simulator
// plays the carrier (POST .../sandbox/inbound): its INVITE goes through the gateway's
// own SIP edge, ring and offers exactly like a real caller's. With "answer as a sandbox
// agent" this page is that agent too: it registers `console-sandbox` (telephony on),
// opens its presence session, goes available, accepts the `incoming` offer with the
// presence `accept` frame (what C2C.accept sends) and has the simulator join the room
// with the agent's microphone (POST /api/c2c/console/calls/{id}/sandbox-join: a
// browser cannot carry media to a simulator). The call's progress, offers, outcome and
// the inbound CRM webhook are shown as the gateway records them.
import { api } from '../api.js';
import { h, mount, kv, table, errorBox } from '../dom.js';
import { connectPresence } from '../../presence.js';

export const SANDBOX_AGENT = 'console-sandbox';
const STEPS = ['Ringing', 'Offered', 'Active', 'Ended'];
const OUTCOMES = { accepted: 'accepted', rejected: 'rejected', timeout: 'rang out', cancelled: 'cancelled', failed: 'failed' };
const time = (ms) => (ms ? new Date(ms).toISOString().slice(11, 19) : '—');

/** The inbound part of the Sandbox: its cards, and a function that undoes it. */
export function inboundSandbox(ctx) {
  const numbers = ctx.overview.inbound_numbers || [];
  const tenantPath = `/api/c2c/console/tenants/${encodeURIComponent(ctx.tenant)}`;
  const agentPath = `/api/c2c/agents/${encodeURIComponent(SANDBOX_AGENT)}`;
  let step = -1;
  const reached = new Set();
  let callId = null;
  let poller = null;
  let agent = null; // the sandbox agent's presence handle while it is open
  let left = false;
  const early = new Map(); // offers that arrived before the call id was known

  const steps = h('ol', { class: 'steps', id: 'inbound-steps', 'aria-label': 'Inbound call state' }, STEPS.map((s) => h('li', { 'data-step': s }, s)));
  const stateText = h('p', { id: 'inbound-state', role: 'status' }, 'No inbound call yet.');
  const log = h('ul', { class: 'log', id: 'inbound-log', 'aria-label': 'Inbound call events' });
  const detail = h('div', { id: 'inbound-detail' }, h('p', { class: 'empty' }, 'Place a test inbound call to see its offers and outcome.'));
  const hook = h('div', { id: 'inbound-webhook' }, h('p', { class: 'empty' }, 'Shown when the call ends.'));
  const note = (m) => log.prepend(h('li', {}, `${new Date().toISOString().slice(11, 19)} ${m}`));
  const setStep = (n) => {
    if (n <= step) return;
    step = n;
    reached.add(n);
    [...steps.children].forEach((li, i) => {
      li.className = i === n ? 'current' : i < n && reached.has(i) ? 'done' : '';
      if (i === n) li.setAttribute('aria-current', 'step'); else li.removeAttribute('aria-current');
    });
  };

  const did = h('select', { id: 'sb-in-did', name: 'did' }, numbers.map((n) => h('option', { value: n.did }, `${n.did} (${n.trunk})`)));
  const from = h('input', { id: 'sb-in-from', name: 'from', inputmode: 'tel', value: '+919812345678' });
  const hold = h('input', { id: 'sb-in-hold', name: 'hold_seconds', type: 'number', min: 1, max: 30, value: 10 });
  const answer = h('input', { id: 'sb-in-answer', name: 'answer', type: 'checkbox', class: 'switch' });
  const place = h('button', { type: 'submit', id: 'sb-in-place' }, 'Place test inbound call');
  const hang = h('button', { type: 'button', id: 'sb-in-hangup', class: 'danger', disabled: true }, 'Hang up (as the agent)');
  const err = h('div', { 'aria-live': 'assertive' });
  const form = h('form', { id: 'inbound-form', novalidate: true },
    h('div', { class: 'row' },
      h('div', {}, h('label', { for: 'sb-in-did' }, 'Number called'), did),
      h('div', {}, h('label', { for: 'sb-in-from' }, 'Caller'), from),
      h('div', {}, h('label', { for: 'sb-in-hold' }, 'Caller stays on (s)'), hold)),
    h('label', { class: 'check', for: 'sb-in-answer' }, answer, ` Answer as a sandbox agent (${SANDBOX_AGENT})`),
    h('div', { class: 'row' }, place, hang), err);

  /** The sandbox agent's presence session, available, answering this page's call. */
  async function agentOn() {
    if (agent && agent.state !== 'closed') {
      if (agent.availability !== 'available') await agent.setAvailability('available');
      return;
    }
    await api(agentPath, { method: 'PUT', body: { name: 'Console sandbox', telephony_enabled: true } });
    const mint = () => api(`${agentPath}/session`, { method: 'POST', body: {} });
    const s = await mint();
    const p = await connectPresence({ token: s.token, url: s.ws_url, fetchToken: mint });
    if (left) { p.disconnect(); return; }
    agent = p;
    p.on('incoming', (o) => {
      if (callId === null) early.set(o.call_id, o);
      else if (o.call_id === callId) take(o);
      else p.reject(o.call_id).catch(() => {}); // not this page's test call
    });
    p.on('incoming_cancelled', (o) => { if (o.call_id === callId) note(`offer cancelled (${o.reason})`); });
    p.on('closed', (e) => { note(`sandbox agent session closed (${e.reason})`); agent = null; });
    await p.setAvailability('available');
    note(`${SANDBOX_AGENT} is available`);
  }

  /** Nobody answers: the sandbox agent goes offline and its session closes. */
  async function agentOff() {
    const p = agent;
    agent = null;
    if (!p || p.state === 'closed') return;
    try { await p.setAvailability('offline'); } catch (_) { /* closing anyway */ }
    p.disconnect();
    note(`${SANDBOX_AGENT} is offline`);
  }

  async function take(offer) {
    if (!agent) return;
    note(`offered to ${SANDBOX_AGENT}: from ${offer.from || '?'}${offer.lead ? ' (lead ' + (offer.lead.lead_id || offer.lead.id || '…') + ')' : ''}`);
    try {
      const a = await agent.accept(offer.call_id);
      note(`accepted: room ${a.room}`);
      hang.disabled = false;
      await api(`/api/c2c/console/calls/${encodeURIComponent(offer.call_id)}/sandbox-join`, { method: 'POST', body: {} });
      note('joined the room, microphone published (simulated)');
    } catch (e) {
      note(`accept failed: ${e.code || ''} ${e.message}`);
    }
    refresh();
  }

  function showCall(c) {
    const offers = c.offers || [];
    const phase = c.call.status;
    setStep(0); // an inbound call is born ringing
    setStep(phase === 'ENDED' ? 3 : phase === 'ACTIVE' ? 2 : offers.length ? 1 : 0);
    stateText.textContent = `State: ${STEPS[step]}${c.call.call_status ? ` · ${c.call.call_status}` : ''}`;
    mount(detail,
      kv([
        ['Direction', h('span', { 'data-field': 'direction' }, c.direction)],
        ['Number called', c.did],
        ['Caller', c.call.customer_number],
        ['Gateway status', h('span', { 'data-field': 'status' }, c.call.status + (c.call.call_status ? ` · ${c.call.call_status}` : ''))],
        ['Ended because', h('span', { 'data-field': 'disconnect_reason' }, c.call.disconnect_reason || '—')],
        ['Agent', c.call.agent_id || '—'],
        ['Lead', c.lead_id || '—'],
      ]),
      h('h3', {}, 'Offers'),
      table('Offers to agents', ['Agent', 'Outcome', 'Offered (UTC)', 'Ended (UTC)'],
        offers.map((o) => [
          h('code', { 'data-offer-agent': o.agent_id }, o.agent_id),
          h('span', { 'data-offer-outcome': o.outcome || 'open' }, o.outcome ? OUTCOMES[o.outcome] || o.outcome : 'ringing'),
          time(o.offered_ms), time(o.ended_ms)]),
        'No agent was offered the call.'));
  }

  async function refresh() {
    if (!callId) return;
    const id = callId;
    try {
      const c = await api(`/api/c2c/console/calls/${encodeURIComponent(id)}`);
      if (id !== callId) return;
      showCall(c);
      if (c.webhook) {
        clearInterval(poller);
        poller = null;
        const hd = Object.entries(c.webhook.headers).filter(([, v]) => v).map(([k, v]) => `${k}: ${v}`).join('\n');
        mount(hook, kv([['POST', c.webhook.url || '(no CRM webhook configured)']]),
          h('pre', { id: 'inbound-webhook-preview' }, h('code', {}, `${hd}\n\n${JSON.stringify(JSON.parse(c.webhook.body_json), null, 2)}`)));
        note(`ended: ${c.call.call_status}${c.call.disconnect_reason ? ' (' + c.call.disconnect_reason + ')' : ''}`);
        hang.disabled = true;
        place.disabled = false;
      }
    } catch (e) {
      note(`status check failed: ${e.message}`);
    }
  }

  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    mount(err);
    const seconds = Number(hold.value);
    if (!Number.isInteger(seconds) || seconds < 1 || seconds > 30) { mount(err, errorBox('The caller stays on 1-30 seconds.')); hold.focus(); return; }
    if (answer.checked && ctx.session.role !== 'tenant') {
      mount(err, errorBox('The sandbox agent is registered as the tenant: sign in with the tenant\'s console key, or place the call without it.'));
      return;
    }
    clearInterval(poller);
    poller = null;
    callId = null;
    early.clear();
    step = -1;
    reached.clear();
    [...steps.children].forEach((li) => { li.className = ''; li.removeAttribute('aria-current'); });
    stateText.textContent = 'Calling…';
    mount(log);
    mount(hook, h('p', { class: 'empty' }, 'Shown when the call ends.'));
    place.disabled = true;
    hang.disabled = true;
    try {
      if (answer.checked) await agentOn(); else await agentOff();
      const r = await api(`${tenantPath}/sandbox/inbound`, { method: 'POST', body: { did: did.value, from: from.value.trim(), hold_seconds: seconds } });
      callId = r.call_id;
      note(`the simulator called ${r.did} from ${r.from}: ${r.call_id}`);
      const offer = early.get(callId);
      early.clear();
      if (offer && agent) take(offer);
      poller = setInterval(refresh, 500);
      refresh();
    } catch (e) {
      place.disabled = false;
      stateText.textContent = 'No inbound call yet.';
      mount(err, errorBox(e.message));
    }
  });
  hang.addEventListener('click', async () => {
    hang.disabled = true;
    try {
      await api(`/api/c2c/calls/${encodeURIComponent(callId)}/hangup`, { method: 'POST', body: {} });
      note('hangup sent');
    } catch (e) {
      note(`hangup failed: ${e.message}`);
    }
    refresh();
  });

  const cards = [
    h('div', { class: 'card', id: 'inbound-sandbox' },
      h('h3', {}, 'Test an inbound call'),
      h('p', { class: 'lead' }, 'The bundled LiveKit simulator calls one of your numbers as a carrier would, through this gateway\'s SIP edge. The call is offered to your available agents — or, with the box ticked, to a sandbox agent this page plays. Needs the bundled simulator.'),
      numbers.length
        ? [form, steps, stateText, log]
        : h('p', { class: 'empty', id: 'inbound-none' }, `This tenant has no inbound numbers: add [[inbound.numbers]] to policies/tenants/${ctx.tenant}.toml.`)),
    h('div', { class: 'card' }, h('h3', {}, 'Inbound call: offers and outcome'), detail),
    h('div', { class: 'card' }, h('h3', {}, 'CRM webhook preview (inbound)'), h('p', { class: 'lead' }, 'The payload that would POST to the CRM when the inbound call ends.'), hook),
  ];
  const undo = () => {
    left = true;
    clearInterval(poller);
    if (agent) agent.disconnect();
    agent = null;
  };
  return { cards, undo };
}
