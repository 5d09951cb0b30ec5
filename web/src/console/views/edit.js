// Editing a tenant from the console, through the same provisioning API as the owner's
// (PATCH /api/c2c/console/tenants/{id}/settings): every save sends the revision it
// was read at (a change made meanwhile is refused, not overwritten), the server
// validates like `policy check`, checks new LiveKit credentials live before anything is
// written, and audits who changed what. Secrets are write-only here: a blank secret
// field keeps the stored one.
import { api } from '../api.js';
import { h, mount, kv, table, errorBox, toast } from '../dom.js';

const path = (ctx) => `/api/c2c/console/tenants/${encodeURIComponent(ctx.tenant)}/settings`;

/** The tenant as provisioning shows it: { tenant, outbound_enabled, changes }. */
export async function loadSettings(ctx) {
  return api(path(ctx));
}

/** Whether this signed-in key may change the tenant's trunks and LiveKit project. */
export function mayEditTelephony(ctx, s) {
  return ctx.session.role === 'owner' || s.tenant.billing_mode === 'byot';
}

/** Sends one change; on success reloads the overview and re-renders the view. */
async function save(ctx, s, change, msg, done) {
  try {
    await api(path(ctx), { method: 'PATCH', body: { revision: s.tenant.revision, ...change } });
    await ctx.reload();
    toast(done);
    await ctx.render();
  } catch (e) {
    mount(msg, errorBox(e.code === 'revision_conflict'
      ? 'Someone changed this tenant meanwhile; reload the page and make your change again.'
      : e.message));
  }
}

function field(id, label, attrs = {}) {
  return h('div', {}, h('label', { for: id }, label), h('input', { id, name: id, ...attrs }));
}

function check(id, label, checked) {
  return h('div', {}, h('label', { for: id }, label), h('input', { id, name: id, type: 'checkbox', class: 'switch', checked }));
}

/** CRM webhook: URL, outbound key and signing secret (write-only). */
export function crmForm(ctx, s) {
  const c = s.tenant.crm_webhook;
  const msg = h('div', { 'aria-live': 'polite' });
  const form = h('form', { id: 'crm-form', novalidate: true },
    h('div', { class: 'row' },
      field('crm-url', 'Webhook URL', { value: c ? c.url : '', required: true, inputmode: 'url', autocomplete: 'off' }),
      field('crm-key', 'New outbound X-api-key', { type: 'password', autocomplete: 'new-password', placeholder: c ? 'blank: keep the current key' : 'required' }),
      field('crm-signing', 'New signing secret', { type: 'password', autocomplete: 'new-password', placeholder: 'blank: keep' })),
    c && c.signing_secret_set ? check('crm-unsign', 'Remove the signing secret', false) : null,
    h('button', { type: 'submit' }, 'Save CRM webhook'),
    msg);
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const crm = {};
    const url = form['crm-url'].value.trim();
    if (!url) { mount(msg, errorBox('Enter the CRM webhook URL.')); return; }
    if (!c || url !== c.url) crm.url = url;
    if (form['crm-key'].value) crm.outbound_key = form['crm-key'].value;
    if (form['crm-signing'].value) crm.signing_secret = form['crm-signing'].value;
    else if (form['crm-unsign'] && form['crm-unsign'].checked) crm.signing_secret = null;
    if (!Object.keys(crm).length) { mount(msg, errorBox('Nothing changed.')); return; }
    await save(ctx, s, { crm_webhook: crm }, msg, 'CRM webhook saved.');
  });
  return form;
}

/** LiveKit credentials: validated live by the server before anything is written. */
export function livekitForm(ctx, s) {
  const lk = s.tenant.livekit;
  const msg = h('div', { 'aria-live': 'polite' });
  const managed = s.tenant.billing_mode === 'managed';
  const form = h('form', { id: 'livekit-form', novalidate: true },
    managed ? h('p', { class: 'empty' }, 'This tenant uses the platform\'s LiveKit project. Saving its own credentials makes it bring-your-own (byot): metered, no longer paid from the wallet.') : null,
    h('div', { class: 'row' },
      field('lk-url', 'LiveKit URL', { value: lk ? lk.url : '', inputmode: 'url', autocomplete: 'off', placeholder: 'https://project.livekit.cloud' }),
      field('lk-key', 'API key', { value: lk ? lk.api_key : '', autocomplete: 'off' }),
      field('lk-secret', 'API secret', { type: 'password', autocomplete: 'new-password', required: true })),
    h('button', { type: 'submit' }, 'Validate and save LiveKit'),
    msg);
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const body = { url: form['lk-url'].value.trim(), api_key: form['lk-key'].value.trim(), api_secret: form['lk-secret'].value };
    if (!body.url || !body.api_key || !body.api_secret) { mount(msg, errorBox('URL, API key and API secret are all needed: the secret is checked with them.')); return; }
    mount(msg, h('p', { class: 'empty' }, 'Checking the credentials with LiveKit (ListRooms)…'));
    await save(ctx, s, { livekit: body }, msg, 'LiveKit credentials validated and saved.');
  });
  if (lk && ctx.session.role === 'owner') {
    const drop = h('button', { type: 'button', id: 'livekit-remove', class: 'danger' }, 'Remove (make managed)');
    drop.addEventListener('click', () => save(ctx, s, { livekit: null }, msg, 'The tenant is managed now.'));
    form.append(drop);
  }
  return form;
}

/** Trunks: add, edit, enable or disable one; the whole list is sent back. */
export function trunkEditor(ctx, s) {
  const trunks = s.tenant.trunks.map((t) => ({ ...t }));
  const msg = h('div', { 'aria-live': 'polite' });
  const send = (list, done) => save(ctx, s, { trunks: list }, msg, done);
  const form = h('form', { id: 'trunk-form', novalidate: true },
    h('h3', { id: 'trunk-form-title' }, 'Add trunk'),
    h('div', { class: 'row' },
      field('tr-label', 'Label', { required: true, autocomplete: 'off', placeholder: 'airtel-mum' }),
      field('tr-lk', 'LiveKit trunk id', { required: true, autocomplete: 'off', placeholder: 'ST_...' }),
      field('tr-prefix', 'Dial prefix (internal)', { inputmode: 'numeric', autocomplete: 'off' }),
      field('tr-did', 'Default DID', { required: true, inputmode: 'tel', placeholder: '+919999999999' }),
      field('tr-carrier', 'Carrier', { required: true, autocomplete: 'off', placeholder: 'sip:10.0.0.5:5060' })),
    h('div', { class: 'row' }, check('tr-default', 'Default trunk', false), check('tr-enabled', 'Enabled', true),
      h('div', {}, h('label', { for: 'tr-category' }, 'DLT category'),
        h('select', { id: 'tr-category', name: 'tr-category' },
          ['service', 'transactional', 'promotional'].map((c) => h('option', { value: c }, c))))),
    h('button', { type: 'submit', id: 'trunk-save' }, 'Save trunk'),
    msg);
  let editing = null;
  const fill = (t) => {
    editing = t ? t.label : null;
    form['tr-label'].value = t ? t.label : '';
    form['tr-label'].readOnly = !!t;
    form['tr-lk'].value = t ? t.livekit_trunk_id : '';
    form['tr-prefix'].value = t ? t.prefix : '';
    form['tr-did'].value = t ? t.default_did : '';
    form['tr-carrier'].value = t ? t.carrier : '';
    form['tr-default'].checked = t ? t.default : false;
    form['tr-enabled'].checked = t ? t.enabled : true;
    form['tr-category'].value = t && t.category ? t.category : 'service';
    document.getElementById('trunk-form-title').textContent = t ? `Edit trunk ${t.label}` : 'Add trunk';
    form['tr-lk'].focus();
  };
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const t = {
      label: form['tr-label'].value.trim(), livekit_trunk_id: form['tr-lk'].value.trim(),
      prefix: form['tr-prefix'].value.trim(), default_did: form['tr-did'].value.trim(),
      carrier: form['tr-carrier'].value.trim(), default: form['tr-default'].checked, enabled: form['tr-enabled'].checked,
      category: form['tr-category'].value,
    };
    if (!t.label || !t.livekit_trunk_id || !t.default_did || !t.carrier) { mount(msg, errorBox('Label, LiveKit trunk id, default DID and carrier are required.')); return; }
    const list = trunks.map((x) => (t.default && x.label !== t.label ? { ...x, default: false } : x));
    const i = list.findIndex((x) => x.label === (editing || t.label));
    if (i >= 0 && !editing) { mount(msg, errorBox(`A trunk labelled ${t.label} exists; edit it instead.`)); return; }
    if (i >= 0) list[i] = { ...list[i], ...t };
    else list.push(t);
    await send(list, `Trunk ${t.label} saved.`);
  });
  const rows = trunks.map((t) => {
    const edit = h('button', { type: 'button', class: 'secondary', 'data-edit': t.label }, 'Edit');
    edit.addEventListener('click', () => fill(t));
    const flip = h('button', { type: 'button', class: 'secondary', 'data-flip': t.label }, t.enabled ? 'Disable' : 'Enable');
    flip.addEventListener('click', () => send(trunks.map((x) => (x.label === t.label ? { ...x, enabled: !x.enabled } : x)),
      `Trunk ${t.label} ${t.enabled ? 'disabled' : 'enabled'}.`));
    return [t.label, h('span', {}, edit, ' ', flip)];
  });
  return h('div', { id: 'trunk-editor' },
    h('h3', {}, 'Change trunks'),
    table('Edit trunks', ['Trunk', 'Change'], rows, 'No trunks yet.'),
    form);
}

/** The provisioning audit of this tenant, newest first. */
export function changesCard(s) {
  const rows = [...s.changes].reverse().map((c) => [
    new Date(c.at_ms).toISOString().replace('T', ' ').slice(0, 19),
    c.actor,
    c.action,
    c.changes.map((f) => (f.secret ? `${f.field} (secret replaced)` : `${f.field}: ${show(f.from)} → ${show(f.to)}`)).join('; '),
  ]);
  return h('div', { class: 'card', id: 'changes' },
    h('h3', {}, 'Recent changes'),
    table('Recent changes', ['When (UTC)', 'Who', 'What', 'Fields'], rows, 'No changes made through the console or the API yet.'));
}

function show(v) {
  return v === undefined || v === null ? '—' : typeof v === 'string' ? v : JSON.stringify(v);
}

/** The billing mode, as a labelled value. */
export function modeLine(s) {
  const m = s.tenant.billing_mode;
  return kv([['Billing mode', h('span', { id: 'billing-mode', class: 'badge' }, m === 'byot' ? 'byot (own telephony, metered)' : 'managed (platform telephony, wallet)')]]);
}

const KNOBS = [
  ['ring_timeout_seconds', 'Ring timeout (s)'],
  ['agent_drop_grace_seconds', 'Agent-drop grace (s)'],
  ['max_duration_seconds', 'Max duration (s)'],
  ['unconnected_expiry_seconds', 'Unconnected expiry (s)'],
  ['poll_interval_ms', 'Poll interval (ms)'],
  ['token_ttl_seconds', 'Agent token lifetime (s)'],
];

/** The platform's call knobs and answer detection (owner only; gateway.toml). */
export async function platformForm(ctx) {
  const ps = await api('/api/c2c/owner/gateway');
  const msg = h('div', { 'aria-live': 'polite' });
  const mode = h('select', { id: 'pf-detection', name: 'pf-detection' },
    ['poll', 'webhook', 'sip'].map((m) => h('option', { value: m, selected: ps.settings.answer_detection === m }, m)));
  const form = h('form', { id: 'platform-form', novalidate: true },
    h('p', { class: 'empty' }, 'Platform settings (gateway.toml), for every tenant. Call knobs apply to new calls at once; answer detection takes effect on the next restart.'),
    ps.restart_needed.length ? h('p', { class: 'error', id: 'restart-needed' }, `Waiting for a restart: ${ps.restart_needed.join(', ')}`) : null,
    h('div', { class: 'row' },
      h('div', {}, h('label', { for: 'pf-detection' }, 'Answer detection'), mode),
      KNOBS.map(([k, label]) => field(`pf-${k}`, label, { type: 'number', min: '0', value: String(ps.settings.calls[k]) }))),
    h('button', { type: 'submit', id: 'platform-save' }, 'Save platform settings'),
    msg);
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const calls = {};
    for (const [k] of KNOBS) {
      const v = Number(form[`pf-${k}`].value);
      if (!Number.isInteger(v) || v < 0) { mount(msg, errorBox('Every knob is a whole number.')); return; }
      if (v !== ps.settings.calls[k]) calls[k] = v;
    }
    const body = { revision: ps.settings.revision };
    if (Object.keys(calls).length) body.calls = calls;
    if (mode.value !== ps.settings.answer_detection) body.answer_detection = mode.value;
    if (Object.keys(body).length === 1) { mount(msg, errorBox('Nothing changed.')); return; }
    try {
      const r = await api('/api/c2c/owner/gateway', { method: 'PATCH', body });
      await ctx.reload();
      toast(r.restart_needed.length ? `Saved; ${r.restart_needed.join(', ')} waits for a restart.` : 'Platform settings saved.');
      await ctx.render();
    } catch (e) {
      mount(msg, errorBox(e.message));
    }
  });
  return form;
}
