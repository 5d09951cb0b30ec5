// Sandbox: a real call from this browser through exactly the agent flow:
// /click2call (with the signed-in console key) -> C2C.startCall (join + publish mic,
// then /connect) -> hang up -> the gateway finalizes. Shows the states, what hit the
// trunk, and the exact CRM webhook the outcome produces.
// Below it, the inbound Sandbox (sandbox-inbound.js): the simulator calls one of the
// tenant's numbers, and this page may answer as a sandbox agent.
import { api } from '../api.js';
import { h, mount, kv, errorBox } from '../dom.js';
import { inboundSandbox } from './sandbox-inbound.js';

const STEPS = ['Initiated', 'Ringing', 'Active', 'Ended'];
const PHASE_STEP = { INITIATED: 0, DIALING: 1, RINGING: 1, ACTIVE: 2, ENDED: 3 };
const CLIENT_STEP = { joining: 0, dialing: 1, ringing: 1, active: 2, ended: 3 };
// How long after the end the page waits for an anchored call's media report.
const MEDIA_WAIT_MS = 10000;

export default async function sandbox(root, ctx) {
  const C2C = window.C2C;
  let step = -1;
  const reached = new Set();
  let callId = null;
  let poller = null;
  // When the webhook preview appeared: an anchored call's media report comes after the
  // end, so its page keeps polling a little longer for it.
  let endedAt = null;
  const steps = h('ol', { class: 'steps', id: 'sandbox-steps', 'aria-label': 'Call state' }, STEPS.map((s) => h('li', { 'data-step': s }, s)));
  const stateText = h('p', { id: 'sandbox-state', role: 'status' }, 'No call yet.');
  const log = h('ul', { class: 'log', id: 'sandbox-log', 'aria-label': 'Call events' });
  const trunk = h('div', { id: 'sandbox-trunk' }, h('p', { class: 'empty' }, 'Place a call to see the dialed string.'));
  const hook = h('div', { id: 'sandbox-webhook' }, h('p', { class: 'empty' }, 'Shown when the call ends.'));
  const setStep = (n) => {
    if (n <= step) return;
    step = n;
    reached.add(n);
    // Only states the call really passed through are marked; a call that ended before
    // ringing shows Ringing and Active as not reached.
    [...steps.children].forEach((li, i) => {
      li.className = i === n ? 'current' : i < n && reached.has(i) ? 'done' : '';
      if (i === n) li.setAttribute('aria-current', 'step'); else li.removeAttribute('aria-current');
    });
    stateText.textContent = `State: ${STEPS[n]}`;
  };
  const note = (m) => log.prepend(h('li', {}, `${new Date().toISOString().slice(11, 19)} ${m}`));

  const number = h('input', { id: 'sb-number', name: 'customer_number', inputmode: 'tel', required: true, placeholder: '9530251797' });
  const place = h('button', { type: 'submit', id: 'sb-place' }, 'Place test call');
  const hang = h('button', { type: 'button', id: 'sb-hangup', class: 'danger', disabled: true }, 'Hang up');
  const mute = h('button', { type: 'button', id: 'sb-mute', class: 'secondary', disabled: true, 'aria-pressed': 'false' }, 'Mute');
  const err = h('div', { 'aria-live': 'assertive' });
  const form = h('form', { id: 'sandbox-form', novalidate: true },
    h('div', { class: 'row' }, h('div', {}, h('label', { for: 'sb-number' }, 'Customer number (10 digits)'), number)),
    h('div', { class: 'row' }, place, hang, mute), err);

  const refresh = async () => {
    if (!callId) return;
    try {
      const c = await api(`/api/c2c/console/calls/${encodeURIComponent(callId)}`);
      setStep(PHASE_STEP[c.call.status] ?? 0);
      if (c.trunk) {
        mount(trunk, kv([
          ['Trunk', `${c.trunk.label} (${c.trunk.livekit_trunk_id})`],
          ['Dialed string', h('code', { 'data-field': 'dialed' }, c.trunk.dialed)],
          ['Caller ID', c.trunk.caller_id],
          ['CRM sees (phone_to)', c.trunk.customer_number],
          ['Gateway status', c.call.status + (c.call.call_status ? ` · ${c.call.call_status}` : '')],
          ['Disconnect reason', c.call.disconnect_reason || '—'],
          ['SIP disconnect code', c.sip_disconnect_code ?? '—'],
        ]), c.call.media ? mediaBlock(c.call.media) : []);
      }
      if (c.webhook) {
        endedAt ??= Date.now();
        const mediaDue = c.trunk && c.trunk.media === 'anchor' && !c.call.media && Date.now() - endedAt < MEDIA_WAIT_MS;
        if (!mediaDue) {
          clearInterval(poller);
          poller = null;
        }
        // The gateway ended the call (it owns teardown): leave the room too.
        if (C2C && C2C.callId === callId) C2C.endCall();
        const hd = Object.entries(c.webhook.headers).filter(([, v]) => v).map(([k, v]) => `${k}: ${v}`).join('\n');
        mount(hook, kv([['POST', c.webhook.url || '(no CRM webhook configured)']]),
          h('pre', { id: 'webhook-preview' }, h('code', {}, `${hd}\n\n${JSON.stringify(JSON.parse(c.webhook.body_json), null, 2)}`)));
        hang.disabled = true;
        mute.disabled = true;
        place.disabled = false;
      }
    } catch (e) {
      note(`status check failed: ${e.message}`);
    }
  };

  const offs = [];
  if (C2C) {
    offs.push(C2C.on('state', (e) => { if (e.callId === callId) { note(`client: ${e.state}${e.reason ? ' (' + e.reason + ')' : ''}`); setStep(CLIENT_STEP[e.state] ?? 0); } }));
    offs.push(C2C.on('error', (e) => { if (e.callId === callId) note(`client error at ${e.stage}: ${e.message}`); }));
    offs.push(C2C.on('ended', (e) => { if (e.callId === callId) { note('client: hangup sent'); refresh(); } }));
  }
  window.addEventListener('hashchange', () => offs.forEach((f) => f()), { once: true });

  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    mount(err);
    if (!C2C) { mount(err, errorBox('The agent client (/js/c2c-client.js) did not load.')); return; }
    if (ctx.session.role !== 'tenant') {
      mount(err, errorBox('Sandbox calls are placed as the tenant: sign in with the tenant\'s console key.'));
      return;
    }
    const n = number.value.trim();
    if (!/^\d{10}$/.test(n)) { mount(err, errorBox('Enter the customer number as exactly 10 digits.')); number.focus(); return; }
    step = -1;
    endedAt = null;
    reached.clear();
    [...steps.children].forEach((li) => { li.className = ''; });
    mount(log);
    mount(hook, h('p', { class: 'empty' }, 'Shown when the call ends.'));
    place.disabled = true;
    try {
      const res = await api('/api/c2c/click2call', { method: 'POST', body: { case_id: 'sandbox', customer_number: n, agent_id: 'console-sandbox', customer_crm_id: 'sandbox' } });
      callId = res.call_id;
      note(`click2call: ${res.call_id}`);
      setStep(0);
      hang.disabled = false;
      mute.disabled = false;
      poller = setInterval(refresh, 1000);
      refresh();
      await C2C.startCall(res);
      note('joined, mic published, /connect sent');
    } catch (e) {
      if (!callId) { place.disabled = false; mount(err, errorBox(e.message)); }
    }
  });
  hang.addEventListener('click', async () => { hang.disabled = true; await C2C.endCall(); refresh(); });
  mute.addEventListener('click', async () => {
    const m = mute.getAttribute('aria-pressed') !== 'true';
    await C2C.setMuted(m);
    mute.setAttribute('aria-pressed', String(m));
    mute.textContent = m ? 'Unmute' : 'Mute';
  });

  const inbound = inboundSandbox(ctx);
  mount(root,
    h('h2', { id: 'view-title' }, 'Sandbox'),
    h('p', { class: 'lead' }, 'A real two-way call from this browser — same path as a live agent. Grant mic access when prompted.'),
    h('div', { class: 'card' },
      h('h3', {}, 'How a sandbox call works — 3 steps'),
      h('ol', { class: 'howto' },
        h('li', {}, h('strong', {}, 'Join & publish mic. '), 'This page calls /click2call, joins the LiveKit room and publishes your mic — exactly like a real agent, before anyone is dialed.'),
        h('li', {}, h('strong', {}, 'We dial the customer. '), '/connect places the SIP call into the room; answer detection watches for answer.'),
        h('li', {}, h('strong', {}, 'Talk, then hang up. '), 'Hang Up (or the customer dropping) finalizes the call and previews the exact CRM webhook.'))),
    h('div', { class: 'card' }, h('h3', {}, 'Place a test call'), form, steps, stateText, log),
    h('div', { class: 'card' }, h('h3', {}, 'What hit the trunk'), trunk),
    h('div', { class: 'card' }, h('h3', {}, 'CRM webhook preview'), h('p', { class: 'lead' }, 'The payload that would POST to the CRM on this outcome.'), hook),
    h('h2', { id: 'inbound-title' }, 'Inbound'),
    inbound.cards);
  return inbound.undo;
}

// An anchored call's media as the SIP edge measured it (present once the call ended).
function mediaBlock(m) {
  const dir = (s) => `${s.packets} packets · ${s.loss_percent}% lost · jitter ${s.jitter_ms} ms · longest gap ${s.max_gap_ms} ms`;
  return h('div', { id: 'sandbox-media' },
    h('h3', {}, 'Media (anchored at the SIP edge)'),
    kv([
      ['From the customer (carrier)', dir(m.from_carrier)],
      ['From the agent (LiveKit)', dir(m.from_livekit)],
      ['Early media', m.early_media ? `yes${m.early_media_ms !== null ? `, ${m.early_media_ms} ms before the answer` : ', no answer'}` : 'no'],
      ['One-way audio', m.one_way_audio ? `${m.one_way_audio} silent` : 'no'],
      ['Dead air (media timeout)', m.media_timeout ? 'yes: the call was ended' : 'no'],
      ['Third-party packets dropped', m.dropped_strangers],
    ]));
}
