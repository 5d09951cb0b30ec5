// Keeps a call's LiveKit token fresh (docs/agents.md, "Browser client"). A connected
// room does not need its token again, but livekit-client's resumes and reconnects
// (network change, SFU migration) do: with an expired one a short network blip would
// end the call. So a new token is fetched 30 s before the current one expires and handed
// to the room without reconnecting. A visibilitychange to visible re-checks at once,
// because background tabs throttle timers and the scheduled refresh can fire late.

const LEAD_MS = 30000; // refresh this long before expiry
// Never refresh sooner than this after getting a token, so a token that lives under
// 35 s (or a clock that makes it look so) cannot make the client hammer /token.
const MIN_GAP_MS = 5000;
const RETRY_FIRST_MS = 1000;
const RETRY_MAX_MS = 15000;
const MAX_TIMER_MS = 2 ** 31 - 1; // setTimeout's ceiling: a longer delay fires at once

/** The JWT's claims (base64url JSON payload, not verified: the server does that), or null. */
export function jwtClaims(token) {
  try {
    const b64 = token.split('.')[1].replace(/-/g, '+').replace(/_/g, '/');
    const bin = atob(b64 + '='.repeat((4 - (b64.length % 4)) % 4));
    return JSON.parse(new TextDecoder().decode(Uint8Array.from(bin, (c) => c.charCodeAt(0))));
  } catch (_) {
    return null;
  }
}

/**
 * When `token` expires on this browser's clock, given that it was received at
 * `receivedAt`, or null when it carries no `exp`. Its lifetime is taken from its own
 * claims (exp - nbf, or exp - iat): the gateway's clock set both, so an agent PC whose
 * clock is off by minutes still refreshes on time.
 */
export function localExpiry(token, receivedAt) {
  const c = jwtClaims(token);
  if (!c || typeof c.exp !== 'number') return null;
  const issued = typeof c.nbf === 'number' ? c.nbf : c.iat;
  return typeof issued === 'number' ? receivedAt + (c.exp - issued) * 1000 : c.exp * 1000;
}

/**
 * Starts refreshing. `fetchToken(currentToken)` -> Promise of {token, expires_at_ms}
 * (rejects with `.status` on an HTTP error; 409 means the call ended: stop quietly);
 * `apply(token)` hands it to the room; `onRefreshed(answer)` after each success;
 * `onFailed(error)` once when the token expires before a refresh succeeded (the client
 * keeps trying: a token that arrives late still serves the next reconnect). Returns
 * { stop }.
 */
export function startTokenRefresh({ token, receivedAt, fetchToken, apply, onRefreshed, onFailed, doc = document }) {
  let current = token;
  let expiresAt = localExpiry(token, receivedAt);
  let told = false;
  let timer = null;
  let inFlight = false;
  let stopped = false;
  let failures = 0;

  const schedule = (ms) => {
    clearTimeout(timer);
    timer = setTimeout(refresh, Math.min(Math.max(ms, 0), MAX_TIMER_MS));
  };
  const scheduleNext = () => {
    if (expiresAt !== null) schedule(Math.max(expiresAt - LEAD_MS - Date.now(), MIN_GAP_MS));
  };

  function retryOrGiveUp(err) {
    const delay = Math.min(RETRY_MAX_MS, RETRY_FIRST_MS * 2 ** failures);
    failures += 1;
    if (expiresAt !== null && Date.now() + delay >= expiresAt && !told) {
      told = true;
      onFailed(err);
    }
    schedule(delay);
  }

  async function refresh() {
    if (stopped || inFlight) return;
    inFlight = true;
    clearTimeout(timer);
    try {
      const got = await fetchToken(current);
      if (stopped) return;
      if (!got || typeof got.token !== 'string' || !got.token) throw new Error('the /token answer has no token');
      failures = 0;
      told = false;
      current = got.token;
      expiresAt = localExpiry(got.token, Date.now());
      apply(got.token);
      onRefreshed(got);
      scheduleNext();
    } catch (e) {
      if (stopped) return;
      if (e && e.status === 409) stop(); // the call ended: there is nothing to keep alive
      else if (e && e.status === 401) {
        // Our token is not this call's: retrying cannot help.
        stop();
        onFailed(e);
      } else retryOrGiveUp(e);
    } finally {
      inFlight = false;
    }
  }

  function onVisibility() {
    if (doc.visibilityState !== 'visible' || expiresAt === null) return;
    if (expiresAt - Date.now() <= LEAD_MS) refresh();
  }

  function stop() {
    stopped = true;
    clearTimeout(timer);
    doc.removeEventListener('visibilitychange', onVisibility);
  }

  doc.addEventListener('visibilitychange', onVisibility);
  scheduleNext();
  return { stop };
}
