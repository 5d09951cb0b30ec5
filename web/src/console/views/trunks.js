// Trunks: the tenant's configured trunks and "Test normalize" (the clean CRM number and
// the internal dialed string a trunk would produce).
import { api } from '../api.js';
import { h, mount, table, kv, errorBox } from '../dom.js';
import { loadSettings, mayEditTelephony, trunkEditor } from './edit.js';

export default async function trunks(root, ctx) {
  const editable = await loadSettings(ctx);
  const list = ctx.overview.trunks;
  const yes = (b, label) => h('span', { class: b ? 'badge ok' : 'badge' }, b ? label : 'no');
  const result = h('div', { id: 'normalize-result', 'aria-live': 'polite' });
  const trunkSel = h('select', { id: 'nz-trunk', name: 'trunk' },
    h('option', { value: '' }, 'Default trunk (as calls would dial)'),
    list.map((t) => h('option', { value: t.label }, t.label + (t.enabled ? '' : ' (disabled)'))));
  const form = h('form', { id: 'normalize-form', novalidate: true },
    h('div', { class: 'row' },
      h('div', {}, h('label', { for: 'nz-number' }, 'Customer number'),
        h('input', { id: 'nz-number', name: 'customer_number', inputmode: 'tel', required: true, placeholder: '9530251797' })),
      h('div', {}, h('label', { for: 'nz-did' }, 'Caller ID (optional)'),
        h('input', { id: 'nz-did', name: 'did', inputmode: 'tel', placeholder: '+919999999999' })),
      h('div', {}, h('label', { for: 'nz-trunk' }, 'Trunk'), trunkSel)),
    h('button', { type: 'submit' }, 'Test normalize'),
    result);
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const body = { customer_number: form.customer_number.value.trim() };
    if (form.did.value.trim()) body.did = form.did.value.trim();
    if (trunkSel.value) body.trunk = trunkSel.value;
    mount(result, h('p', { class: 'empty' }, 'Normalizing…'));
    try {
      const n = await api(`/api/c2c/console/tenants/${encodeURIComponent(ctx.tenant)}/normalize`, { method: 'POST', body });
      mount(result, h('h3', {}, 'Result'), kv([
        ['Clean CRM number', h('code', { 'data-field': 'customer_number' }, n.customer_number)],
        ['E.164', n.e164],
        ['Dialed string (internal)', h('code', { 'data-field': 'dialed' }, n.dialed)],
        ['Caller ID', n.caller_id],
        ['Trunk', `${n.trunk} (${n.livekit_trunk_id})`],
      ]));
    } catch (e) {
      mount(result, errorBox(e.message));
    }
  });
  mount(root,
    h('h2', { id: 'view-title' }, 'Trunks'),
    h('p', { class: 'lead' }, 'SIP trunks we dial through. The dial prefix is internal — the CRM never sees it.'),
    h('div', { class: 'card' },
      h('h3', {}, 'Configured trunks'),
      table('Configured trunks', ['Label', 'LiveKit trunk', 'Prefix', 'Default DID', 'DLT category', 'Default', 'Enabled'],
        list.map((t) => [t.label, h('code', {}, t.livekit_trunk_id), h('code', {}, t.prefix || '(none)'), t.default_did, t.category, yes(t.default, 'default'), yes(t.enabled, 'enabled')]),
        'No trunks configured yet: calls cannot be placed until a [[trunks]] entry is added.'),
      mayEditTelephony(ctx, editable)
        ? trunkEditor(ctx, editable)
        : h('p', { class: 'empty', id: 'trunks-managed' }, 'This tenant uses the platform\'s telephony: its trunks are assigned by the platform owner.')),
    h('div', { class: 'card' },
      h('h3', {}, 'Test normalize'),
      h('p', { class: 'lead' }, 'See the clean CRM-facing number and the internal dialed string a trunk would produce.'),
      form));
}
