// The console shell: sign-in, tenant choice, hash navigation, and one loaded tenant
// overview shared by the views. Each view lives in views/*.js and renders into <main>.
import { api, store, ApiError } from './api.js';
import { h, mount, errorBox } from './dom.js';
import trunks from './views/trunks.js';
import analytics from './views/analytics.js';
import sandbox from './views/sandbox.js';
import guide from './views/guide.js';
import settings from './views/settings.js';
import agents from './views/agents.js';
import billing from './views/billing.js';
import dlt from './views/dlt.js';

const VIEWS = { trunks, analytics, agents, billing, dlt, sandbox, guide, settings };
const TITLES = { trunks: 'Trunks', analytics: 'Analytics', agents: 'Agents', billing: 'Billing', dlt: 'DLT', sandbox: 'Sandbox', guide: 'Integration guide', settings: 'Settings' };

const $ = (id) => document.getElementById(id);
const ctx = { session: null, tenant: null, overview: null, reload: null, render: null };
let signinSection = null;
// What the shown view returned to undo when it is replaced (e.g. close a live socket).
let leaveView = null;
let renders = 0; // views left so far: a view still loading when left undoes itself at once

function leave() {
  renders += 1;
  if (leaveView) leaveView();
  leaveView = null;
}

function showSignin(message) {
  leave();
  $('nav').hidden = true;
  $('who').hidden = true;
  mount($('view'), signinSection);
  const err = $('signin-error');
  err.hidden = !message;
  err.textContent = message || '';
  $('key').value = '';
  $('key').focus();
}

async function signIn(key) {
  const session = await api('/api/c2c/console/session', { key });
  store.key = key;
  ctx.session = session;
  return session;
}

/** Loads the selected tenant's overview (trunks, settings, DLT, guide data). */
async function loadTenant() {
  ctx.overview = await api(`/api/c2c/console/tenants/${encodeURIComponent(ctx.tenant)}`);
  return ctx.overview;
}
ctx.reload = loadTenant;
ctx.render = () => render();

function fillWho() {
  const sel = $('tenant-select');
  mount(sel, ctx.session.tenants.map((t) => h('option', { value: t.id }, `${t.name} (${t.id})`)));
  const ids = ctx.session.tenants.map((t) => t.id);
  ctx.tenant = ids.includes(store.tenant) ? store.tenant : ids[0] || null;
  sel.value = ctx.tenant || '';
  sel.disabled = ids.length < 2;
  $('role').textContent = ctx.session.role === 'owner' ? 'owner' : 'tenant console';
  $('nav').hidden = false;
  $('who').hidden = false;
}

async function render() {
  const name = (location.hash || '#trunks').slice(1);
  const view = VIEWS[name] ? name : 'trunks';
  for (const a of document.querySelectorAll('#nav a')) {
    if (a.dataset.view === view) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
  document.title = `${TITLES[view]} · Click2Call console`;
  const main = $('view');
  leave();
  const mine = renders;
  if (!ctx.tenant) {
    mount(main, h('section', { class: 'card' }, h('h2', {}, 'No tenants'), h('p', { class: 'empty' }, 'This key can see no tenant. Add a tenant policy file under policies/tenants/.')));
    return;
  }
  mount(main, h('p', { class: 'empty', role: 'status' }, 'Loading…'));
  try {
    if (!ctx.overview || ctx.overview.tenant.id !== ctx.tenant) await loadTenant();
    // Another view was asked for while this one loaded: that render mounts, not this one
    // (else the slower of two renders would replace the newer view).
    if (mine !== renders) return;
    const section = h('section', { 'aria-labelledby': 'view-title', 'data-view': view });
    mount(main, section);
    const undo = await VIEWS[view](section, ctx);
    if (typeof undo === 'function') {
      if (mine === renders) leaveView = undo;
      else undo();
    }
  } catch (e) {
    if (e instanceof ApiError && e.status === 401) {
      store.key = null;
      showSignin('Your key was not accepted any more; sign in again.');
      return;
    }
    if (mine !== renders) return; // a newer view is showing
    mount(main, h('section', { class: 'card' }, h('h2', { id: 'view-title' }, TITLES[view]), errorBox(`Could not load: ${e.message}`)));
  }
}

async function start() {
  signinSection = $('signin');
  $('signin-form').addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const key = $('key').value.trim();
    if (!key) { showSignin('Enter a key.'); return; }
    try {
      await signIn(key);
      fillWho();
      await render();
      $('view').focus();
    } catch (e) {
      showSignin(e instanceof ApiError && (e.status === 401 || e.status === 403)
        ? 'That key was not accepted: use the owner key or a tenant console key.'
        : e.message);
    }
  });
  $('signout').addEventListener('click', () => {
    store.key = null;
    store.tenant = null;
    ctx.session = null;
    ctx.overview = null;
    showSignin('');
  });
  $('tenant-select').addEventListener('change', (ev) => {
    ctx.tenant = ev.target.value;
    store.tenant = ctx.tenant;
    ctx.overview = null;
    render();
  });
  window.addEventListener('hashchange', () => { if (ctx.session) render(); });
  if (store.key) {
    try {
      await signIn(store.key);
      fillWho();
      await render();
      return;
    } catch (_) {
      store.key = null;
    }
  }
  showSignin('');
}

start();
