// A minimal event emitter for the browser clients (C2C, a presence handle). Handlers
// run in subscription order; one that throws is reported asynchronously (so the page's
// error handlers still see it) and does not stop the others or the client's own flow.

/** Returns { on, off, emit }; `on` returns the function that unsubscribes. */
export function emitter() {
  const listeners = new Map(); // event name -> Set of handlers

  function off(event, fn) {
    const set = listeners.get(event);
    if (set) set.delete(fn);
  }

  function on(event, fn) {
    if (typeof fn !== 'function') throw new TypeError('on(event, fn): fn must be a function');
    if (!listeners.has(event)) listeners.set(event, new Set());
    listeners.get(event).add(fn);
    return () => off(event, fn);
  }

  function emit(event, detail) {
    const set = listeners.get(event);
    if (!set) return;
    for (const fn of [...set]) {
      try {
        fn(detail);
      } catch (e) {
        setTimeout(() => { throw e; });
      }
    }
  }

  return { on, off, emit };
}
