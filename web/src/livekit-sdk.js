// /js/livekit-client.js: the pinned livekit-client as window.LivekitClient, the global
// its UMD build (the CDN script of a hand-written integration) defines. c2c-client.js
// loads it when the first call starts, so pages that never call do not pay for it.
import * as LivekitClient from 'livekit-client';

// A page that already has the SDK keeps its own: objects it made from those classes
// must stay instances of the classes it checks against.
window.LivekitClient = window.LivekitClient || LivekitClient;
