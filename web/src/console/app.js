// The console shell: sign-in, tenant choice, hash navigation, and one loaded tenant
// overview shared by the views. Each view lives in views/*.js and renders into <main>.
import { api, store, ApiError } from './api.js';
import { h, mount, errorBox } from './dom.js';
import trunks from './views/trunks.js';
import analytics from './views/analytics.js';
import sandbox from './views/sandbox.js';
import guide from './views/guide.js';
import settings from './views/settings.js';

const VIEWS = { trunks, analytics, sandbox, guide, settings };
const TITLES = { trunks: 'Trunks', analytics: 'Analytics', sandbox: 'Sandbox', guide: 'Integration guide', settings: 'Settings' };

const $ = (id) => document.getElementById(id);
const ctx = { session: null, tenant: null, overview: null, reload: null };
let signinSection = null;

function showSignin(message) {
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
  if (!ctx.tenant) {
    mount(main, h('section', { class: 'card' }, h('h2', {}, 'No tenants'), h('p', { class: 'empty' }, 'This key can see no tenant. Add a tenant policy file under policies/tenants/.')));
    return;
  }
  mount(main, h('p', { class: 'empty', role: 'status' }, 'Loading…'));
  try {
    if (!ctx.overview || ctx.overview.tenant.id !== ctx.tenant) await loadTenant();
    const section = h('section', { 'aria-labelledby': 'view-title', 'data-view': view });
    mount(main, section);
    await VIEWS[view](section, ctx);
  } catch (e) {
    if (e instanceof ApiError && e.status === 401) {
      store.key = null;
      showSignin('Your key was not accepted any more; sign in again.');
      return;
    }
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
