// Integration guide: the contract, rendered with this gateway's real base URL and
// ws_url, the ready-made client snippet, the webhook shape and the go-live checklist.
import { h, mount, kv } from '../dom.js';
import { onboarding } from './dlt.js';

const endpoint = (method, path, text) => h('div', { class: 'endpoint' },
  h('h4', {}, h('span', { class: 'badge' }, method), ' ', h('code', {}, path)), h('p', {}, text));

export default async function guide(root, ctx) {
  const g = ctx.overview.guide;
  const origins = ctx.overview.tenant.allowed_origins || [];
  const base = g.base_url;
  const curl = `curl -X POST ${base}/api/c2c/click2call \\
  -H "X-api-key: YOUR_INBOUND_KEY" \\
  -H "Content-Type: application/json" \\
  -d '{
    "case_id": "abc123",
    "customer_number": "9530251797",
    "agent_id": "agent-42",
    "customer_crm_id": "cust-99"
  }'`;
  const response = `{
  "call_id": "c2c_…",
  "room": "c2c-…",
  "ws_url": "${g.ws_url}",
  "token": "<agent JWT>",
  "customer_number": "9530251797"
}`;
  const sdkJs = `${base}/js/livekit-client.js`;
  const snippet = `<!-- Load once in the agent UI: window.C2C, from this gateway. It fetches the LiveKit
     SDK (${sdkJs}) only when the first call starts. -->
<script src="${g.client_js}"></script>
<script>
  // at agent login: ask for the mic once
  C2C.preGrantMic();

  // follow the call in your UI
  C2C.on('state', (e) => console.log('call', e.callId, e.state)); // joining, dialing, ringing, active, ended
  C2C.on('error', (e) => console.warn('call error', e.stage, e.message));

  // res = the JSON your backend got from /click2call
  async function onClickToCall(res) {
    await C2C.startCall(res);   // joins the room + publishes the mic, THEN calls /connect
  }
  function onMute(muted) { C2C.setMuted(muted); }
  function onHangUp() { C2C.endCall(); }
  // C2C reports ANSWERED to /status when the SIP participant's sip.callStatus becomes
  // "active", ends the call when the customer drops, refreshes the call's LiveKit token
  // before it expires ('token_refreshed'), and sends a hangup beacon if the tab closes
  // mid-call.
</script>`;
  const presenceSnippet = `<span id="c2c-pill"></span>
<script>
  // at agent login; token: your backend gets it server-side with
  // POST ${base}/api/c2c/agents/{agent_id}/session (never put it in a URL)
  async function startPresence(token) {
    const p = await C2C.presence.connect({ token, fetchToken: () => myBackend.presenceToken() });
    p.on('availability', (e) => console.log(e.agentId, e.availability, e.reason));
    p.on('replaced', () => showNotice('Opened in another tab'));
    // Available / Away / Offline; renders nothing for an agent without telephony.
    C2C.presence.mountPill(document.querySelector('#c2c-pill'), { handle: p, telephonyEnabled: user.telephonyEnabled });
  }
</script>`;
  const webhook = `{
  "call_id": "c2c_…",
  "case_id": "abc123",
  "customer_crm_id": "cust-99",
  "phone_to": "9530251797",
  "phone_from": "+919999999999",
  "call_status": "ANSWERED",
  "duration_seconds": 90,
  "agent_id": "agent-42"
}`;
  mount(root,
    h('h2', { id: 'view-title' }, 'Integration guide'),
    h('p', { class: 'lead' }, 'Everything a CRM developer needs to wire Click2Call — no need to ask anyone. Bookmark this.'),
    h('div', { class: 'card' },
      h('h3', {}, 'How it works — 3 steps'),
      h('ol', { class: 'howto' },
        h('li', {}, h('strong', {}, 'Your backend starts a call. '), 'Server-to-server POST /api/c2c/click2call with your X-api-key. You get back a call_id, a room name, the LiveKit ws_url, and a browser token.'),
        h('li', {}, h('strong', {}, 'Agent browser joins, we dial. '), 'The agent\'s browser joins the room with the token and publishes the mic, then calls /connect. We place the SIP call to the customer into that room.'),
        h('li', {}, h('strong', {}, 'We report the outcome. '), 'Our backend detects answer / no-answer / hangup server-side and POSTs your webhook with the final status, duration, and SIP disconnect code.')),
      h('p', {}, h('strong', {}, 'The hard rule: '), 'the agent browser joins the room and publishes mic before the customer is dialed. Always call /connect only after the room is connected.')),
    h('div', { class: 'card' },
      h('h3', {}, 'Setup & keys'),
      kv([
        ['Base URL', h('code', { 'data-field': 'base_url' }, base)],
        ['LiveKit ws_url', h('code', { 'data-field': 'ws_url' }, g.ws_url)],
        ['Agent client', h('code', {}, g.client_js)],
        ['X-api-key (inbound)', 'Your CRM backend sends this on /click2call. Keep it secret (server-side only); it never ships to the browser.'],
      ]),
      h('p', {}, 'Only /click2call needs the secret. The browser endpoints (/connect, /hangup, /status, GET /calls/{id}) are keyed by the opaque call_id.')),
    h('div', { class: 'card', id: 'allowed-origins' },
      h('h3', {}, 'Allowed browser origins'),
      h('p', {}, 'The browser endpoints answer with CORS headers only for these origins (scheme, host and port, exactly as the browser sends them). A page served from any other origin gets a CORS error in the browser console — the gateway counts it (c2c_cors_refused_total) and logs the origin.'),
      origins.length
        ? h('ul', {}, origins.map((o) => h('li', {}, h('code', { 'data-origin': o }, o))))
        : h('p', { class: 'empty', 'data-origin-none': '' }, 'None yet: no browser page may call the browser endpoints.'),
      h('p', {}, h('strong', {}, 'To add one: '), 'ask the platform owner to add it to ', h('code', {}, 'allowed_origins'), ' in ',
        h('code', {}, `policies/tenants/${ctx.overview.tenant.id}.toml`), ', e.g. ', h('code', {}, 'allowed_origins = ["https://crm.example.com"]'),
        '. The gateway picks the change up within a second; no restart.')),
    h('div', { class: 'card' },
      h('h3', {}, '1 · Start a call (your backend)'),
      endpoint('POST', '/api/c2c/click2call', 'Creates the room and mints the agent token. Does not dial yet. Send the customer number as exactly 10 digits.'),
      h('pre', {}, h('code', {}, curl)),
      h('p', {}, 'Response:'),
      h('pre', {}, h('code', {}, response))),
    h('div', { class: 'card' },
      h('h3', {}, '2 · Agent browser snippet'),
      h('p', {}, 'Served over HTTPS (or localhost) — browsers only grant mic access on a secure origin. The client is served by this gateway; no CDN is needed.'),
      h('pre', { id: 'snippet' }, h('code', {}, snippet)),
      h('p', {}, 'Keeping a hand-written snippet that uses the LiveKit browser SDK directly? Load ', h('code', { 'data-field': 'livekit_js' }, sdkJs),
        ' instead of the CDN script tag: it defines window.LivekitClient (the pinned version, served by this gateway).')),
    h('div', { class: 'card' },
      h('h3', {}, 'Agent availability (optional)'),
      h('p', {}, 'Register your agents (PUT /api/c2c/agents/{agent_id} with {"name", "telephony_enabled"}, your X-api-key) to switch telephony per agent and see who is available on the Agents page. An agent starts every session offline and opts in from the pill.'),
      h('pre', { id: 'presence-snippet' }, h('code', {}, presenceSnippet))),
    h('div', { class: 'card' },
      h('h3', {}, '3 · Connect, hangup & poll'),
      endpoint('POST', '/api/c2c/calls/{call_id}/connect', 'Browser calls this after it joined and published mic. Dials the customer. Returns {"status": "ringing"}; 409 agent_not_ready while the agent is not in the room with a published microphone (nothing is dialled).'),
      endpoint('POST', '/api/c2c/calls/{call_id}/hangup', 'Ends the call (agent clicked, or the tab closing via sendBeacon). Idempotent. Answers at once; the outcome (the customer may have hung up first) follows within seconds.'),
      endpoint('POST', '/api/c2c/calls/{call_id}/status', 'Browser reports {status, ...}; ANSWERED is the answer signal in webhook mode.'),
      endpoint('GET', '/api/c2c/calls/{call_id}', 'Current call record for polling UIs.'),
      endpoint('POST', '/api/c2c/calls/{call_id}/token', 'A fresh LiveKit token for the call while it is open ({"token", "expires_at"}; 409 call_ended after). C2C asks for one 30 s before the current token expires and hands it to the room without reconnecting.'),
      h('p', {}, `Answer detection on this gateway: ${ctx.overview.settings.answer_detection}.`)),
    h('div', { class: 'card' },
      h('h3', {}, 'Webhook you receive'),
      h('p', {}, 'We POST your configured CRM webhook URL with header X-api-key: <your outbound key> on each terminal outcome. phone_to is always the clean 10-digit number. call_status is ANSWERED, NOT_ANSWERED or FAILED.'),
      h('pre', { id: 'webhook-shape' }, h('code', {}, webhook))),
    h('div', { class: 'card', id: 'guide-dlt' },
      h('h3', {}, 'DLT onboarding (before the first outbound call)'),
      onboarding(),
      h('p', {}, 'A click2call may name its DLT category with the optional field call_category ("promotional", "service" or "transactional"); without it the trunk\'s category applies. Refusals say exactly why: 403 dlt_pending, 422 caller_id_series, 403 dnd_blocked, 403 outside_calling_hours (with the next allowed time and Retry-After). The DLT tab shows the rules in force.')),
    h('div', { class: 'card' },
      h('h3', {}, 'Go-live checklist'),
      h('ul', { class: 'check' },
        h('li', {}, `Point your click2call action at ${base}/api/c2c/click2call with the inbound X-api-key; send customer_number as 10 digits.`),
        h('li', {}, 'Embed the agent client in the agent UI and call C2C.preGrantMic() at login.'),
        h('li', {}, 'Set your webhook receiver to accept the payload above and verify the outbound X-api-key.'),
        h('li', {}, 'Flip the agent BUSY→AVAILABLE from the webhook\'s terminal call_status.'),
        h('li', {}, 'Complete the DLT onboarding above: outbound calls stay refused (dlt_pending) until the platform owner enables them.'),
        h('li', {}, 'Dry-run the whole flow in the Sandbox tab before cutting over.'))));
}
