// The header availability pill (C2C.presence.mountPill): the agent's availability with a
// select that changes it. It renders nothing at all for an agent without telephony, or
// without a live presence session: a control that cannot work is worse than none.
//
// Styling: classes (c2c-pill, c2c-pill-dot, c2c-pill-select, c2c-pill-note; the root
// carries data-availability) for the host page's CSS, plus a few CSSOM style properties
// for a usable default. Nothing is injected as markup: no <style>, no style="" attribute,
// so a strict Content-Security-Policy (no 'unsafe-inline') holds.
import { AVAILABILITIES } from './presence.js';

const LABELS = { available: 'Available', away: 'Away', offline: 'Offline' };
const DOT_COLORS = { available: '#1d7a45', away: '#a76200', offline: '#6b6f7a' };
const RECONNECTING_COLOR = '#b8c0cc';
const MESSAGES = {
  agent_disabled: 'Calling is turned off for you.',
  rate_limited: 'Too many changes: wait a few seconds.',
  not_connected: 'Not connected: retrying.',
  disconnected: 'Connection lost: retrying.',
  timeout: 'No answer from the gateway.',
};

function build(doc) {
  const root = doc.createElement('span');
  root.className = 'c2c-pill';
  Object.assign(root.style, { display: 'inline-flex', alignItems: 'center', gap: '6px' });
  const dot = doc.createElement('span');
  dot.className = 'c2c-pill-dot';
  dot.setAttribute('aria-hidden', 'true');
  Object.assign(dot.style, { display: 'inline-block', width: '8px', height: '8px', borderRadius: '50%' });
  const select = doc.createElement('select');
  select.className = 'c2c-pill-select';
  select.setAttribute('aria-label', 'Your availability for calls');
  for (const a of AVAILABILITIES) select.append(new Option(LABELS[a], a));
  // Why the last change failed, announced to screen readers.
  const note = doc.createElement('span');
  note.className = 'c2c-pill-note';
  note.setAttribute('role', 'status');
  root.append(dot, select, note);
  return { root, dot, select, note };
}

/**
 * Mounts the pill into `el` (its children are replaced) for `handle`, a presence handle
 * from C2C.presence.connect. `telephonyEnabled`: the agent's switch as the host page
 * knows it (default: what the gateway said at connect). Returns unmount().
 */
export function mountPill(el, { handle, telephonyEnabled } = {}) {
  if (!el || typeof el.replaceChildren !== 'function') throw new TypeError('mountPill needs an element');
  el.replaceChildren();
  if (!handle || handle.state === 'closed') return () => {};
  // The host page's word wins while it gives one; else the gateway's, which follows the
  // registry live (`telephony` events).
  let enabled = telephonyEnabled === undefined ? !!handle.telephonyEnabled : !!telephonyEnabled;

  const ui = build(el.ownerDocument);
  const offs = [];
  const unmount = () => {
    offs.splice(0).forEach((off) => off());
    el.replaceChildren();
  };
  const show = (note) => {
    const live = handle.state === 'ready';
    const a = handle.availability;
    ui.root.dataset.availability = live ? a : 'reconnecting';
    ui.dot.style.background = live ? DOT_COLORS[a] : RECONNECTING_COLOR;
    ui.select.value = a;
    ui.select.disabled = !live;
    ui.select.title = live ? `You are ${LABELS[a].toLowerCase()}` : 'Reconnecting…';
    ui.note.textContent = note || '';
  };
  // Nothing at all without telephony: dead UI is worse than missing UI.
  const render = () => {
    if (!enabled) {
      el.replaceChildren();
      return;
    }
    show();
    if (ui.root.parentNode !== el) el.replaceChildren(ui.root);
  };
  ui.select.addEventListener('change', async () => {
    const want = ui.select.value;
    ui.select.disabled = true;
    try {
      await handle.setAvailability(want);
      show();
    } catch (e) {
      show(MESSAGES[e.code] || e.message); // back to what the gateway says
    }
  });
  offs.push(
    handle.on('availability', (e) => {
      if (e.agentId === handle.agentId && enabled) show();
    }),
    handle.on('telephony', (e) => {
      if (e.agentId !== handle.agentId) return;
      enabled = e.telephonyEnabled;
      render();
    }),
    handle.on('ready', () => enabled && show()),
    handle.on('reconnecting', () => enabled && show()),
    handle.on('closed', unmount),
  );
  render();
  return unmount;
}
