// Settings: the tenant's effective policy with secrets masked, a live "Validate LiveKit
// credentials" check, the billing mode, DLT status with its audit trail, and (owner
// only) the outbound-enable toggle. The CRM webhook and (owner, or a byot tenant) the
// LiveKit credentials are edited here through the provisioning API (edit.js); policy
// files stay the source of truth.
import { api } from '../api.js';
import { h, mount, kv, table, errorBox, toast } from '../dom.js';
import { loadSettings, mayEditTelephony, crmForm, livekitForm, changesCard, modeLine, platformForm } from './edit.js';

export default async function settings(root, ctx) {
  const editable = await loadSettings(ctx);
  const platform = ctx.session.role === 'owner' ? await platformForm(ctx) : null;
  const o = ctx.overview;
  const s = o.settings;
  const lk = s.livekit;
  const crm = s.crm_webhook;
  const verdict = h('div', { id: 'livekit-verdict', 'aria-live': 'polite' });
  const validate = h('button', { type: 'button', id: 'livekit-validate' }, 'Validate LiveKit credentials');
  validate.addEventListener('click', async () => {
    validate.disabled = true;
    mount(verdict, h('p', { class: 'empty' }, 'Calling LiveKit (ListRooms)…'));
    try {
      const v = await api(`/api/c2c/console/tenants/${encodeURIComponent(ctx.tenant)}/livekit-validate`, { method: 'POST', body: {} });
      mount(verdict, v.ok
        ? h('p', {}, h('span', { class: 'badge ok' }, 'valid'), ` LiveKit answered ListRooms in ${v.latency_ms} ms (${v.rooms} open rooms).`)
        : h('p', {}, h('span', { class: 'badge bad' }, 'invalid'), ` ${v.error}`));
    } catch (e) {
      mount(verdict, errorBox(e.message));
    } finally {
      validate.disabled = false;
    }
  });
  const c = s.calls;
  mount(root,
    h('h2', { id: 'view-title' }, 'Settings'),
    h('p', { class: 'lead' }, `Effective policy for ${o.tenant.name} (${o.tenant.id}), from policies/tenants/${o.tenant.id}.toml and gateway.toml. Secrets are masked.`),
    h('div', { class: 'card' },
      h('h3', {}, 'LiveKit'),
      modeLine(editable),
      lk ? kv([['Project', lk.source === 'tenant' ? 'bring-your-own (tenant)' : 'platform (managed)'], ['URL', lk.url], ['API key', lk.api_key], ['API secret', lk.api_secret], ['Region', o.tenant.region]])
        : h('p', { class: 'empty' }, 'No LiveKit project configured.'),
      validate, verdict,
      mayEditTelephony(ctx, editable) ? [h('h3', {}, 'Change LiveKit credentials'), livekitForm(ctx, editable)] : null),
    h('div', { class: 'card' },
      h('h3', {}, 'CRM webhook'),
      crm ? kv([['URL', crm.url], ['Outbound X-api-key', crm.outbound_key], ['Signing secret', crm.signing_secret || 'not set (no webhook-signature header)']])
        : h('p', { class: 'empty' }, 'No CRM webhook configured: outcomes are recorded but not delivered.'),
      h('h3', {}, 'Change the CRM webhook'),
      crmForm(ctx, editable)),
    h('div', { class: 'card' },
      h('h3', {}, 'Answer detection'),
      kv([['Mode', s.answer_detection]]),
      h('p', { class: 'empty' }, 'Webhook needs LiveKit configured to POST /webhooks/livekit. Polling needs no public URL. Set in gateway.toml.')),
    h('div', { class: 'card' },
      h('h3', {}, 'Call knobs'),
      kv([['Ring timeout', `${c.ring_timeout_seconds} s`], ['Agent-drop grace', `${c.agent_drop_grace_seconds} s`], ['Max duration', `${c.max_duration_seconds} s`],
        ['Unconnected expiry', `${c.unconnected_expiry_seconds} s`], ['Poll interval', `${c.poll_interval_ms} ms`],
        ['Requests per second', s.limits.requests_per_second], ['Max concurrent calls', s.limits.max_concurrent_calls],
        ['Allowed browser origins', o.tenant.allowed_origins.join(', ') || 'none']]),
      platform || h('p', { class: 'empty' }, 'Call knobs and answer detection are the platform\'s, in gateway.toml (answer detection takes effect on restart).')),
    dltCard(ctx),
    changesCard(editable));
}

export function dltCard(ctx) {
  const d = ctx.overview.dlt;
  const card = h('div', { class: 'card', id: 'dlt' },
    h('h3', {}, 'DLT'),
    kv([
      ['Principal Entity', d.principal_entity_id],
      ['Outbound calls', h('span', { id: 'dlt-status', class: d.outbound_enabled ? 'badge ok' : 'badge bad' }, d.outbound_enabled ? 'enabled' : 'disabled (dlt_pending)')],
      ['Decided by', d.source === 'owner' ? 'owner toggle' : 'policy file (initial value)'],
    ]),
    h('h3', {}, 'Audit trail'),
    table('DLT audit trail', ['When (UTC)', 'Change', 'Verified by', 'Key', 'Note'],
      (d.audit || []).map((a) => [new Date(a.at_ms).toISOString().replace('T', ' ').slice(0, 19), `${a.old ? 'on' : 'off'} → ${a.new ? 'on' : 'off'}`, a.verified_by, a.key_id, a.note || '']),
      'No changes yet: the policy file value applies.'));
  if (ctx.session.role !== 'owner') {
    card.append(h('p', { class: 'empty' }, 'Only the platform owner can flip outbound-enable, after verifying the DLT Principal Entity binding.'));
    return card;
  }
  const msg = h('div', { 'aria-live': 'polite' });
  const form = h('form', { id: 'dlt-form', novalidate: true },
    h('div', { class: 'row' },
      h('div', {}, h('label', { for: 'dlt-by' }, 'Verified by'), h('input', { id: 'dlt-by', name: 'verified_by', required: true, autocomplete: 'name' })),
      h('div', {}, h('label', { for: 'dlt-note' }, 'Note'), h('input', { id: 'dlt-note', name: 'note' }))),
    h('button', { type: 'submit', id: 'dlt-flip', class: d.outbound_enabled ? 'danger' : '' }, d.outbound_enabled ? 'Disable outbound calls' : 'Enable outbound calls'),
    msg);
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const by = form.verified_by.value.trim();
    if (!by) { mount(msg, errorBox('Say who verified the DLT binding.')); form.verified_by.focus(); return; }
    try {
      await api(`/api/telephony/config/owner/${encodeURIComponent(ctx.tenant)}/outbound-enable`,
        { method: 'POST', body: { enabled: !d.outbound_enabled, verified_by: by, note: form.note.value.trim() } });
      await ctx.reload();
      toast(`Outbound calls ${!d.outbound_enabled ? 'enabled' : 'disabled'} for ${ctx.tenant}.`);
      card.replaceWith(dltCard(ctx));
    } catch (e) {
      mount(msg, errorBox(e.message));
    }
  });
  card.append(h('h3', {}, 'Owner: outbound-enable'), form);
  return card;
}
