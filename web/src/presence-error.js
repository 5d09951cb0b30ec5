// The error of the presence channel and of what travels over it (availability changes,
// inbound-call offers). Its own module so presence.js and offers.js share it without
// importing each other.

/** An error of the presence channel; `code` is the gateway's error code or our own. */
export class PresenceError extends Error {
  constructor(code, message) {
    super(message || code);
    this.name = 'PresenceError';
    this.code = code;
  }
}
