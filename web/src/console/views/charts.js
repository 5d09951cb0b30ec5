// Charts drawn by our own code as SVG (no chart library): a bar chart of failures by
// SIP code and stacked bars of outcomes by day (missed inbound calls a series of their
// own). Each chart has a <title>/<desc> for
// screen readers, and the views also show the numbers as tables.
import { h } from '../dom.js';

const W = 640;
const H = 240;
const PAD = { l: 40, r: 10, t: 10, b: 36 };

function niceMax(v) {
  if (v <= 5) return 5;
  const p = 10 ** Math.floor(Math.log10(v));
  return Math.ceil(v / p) * p;
}

function axes(max) {
  const ih = H - PAD.t - PAD.b;
  const ticks = [0, max / 2, max];
  return ticks.map((t) => {
    const y = PAD.t + ih - (t / max) * ih;
    return h('g', {},
      h('line', { x1: PAD.l, x2: W - PAD.r, y1: y, y2: y, stroke: '#dde1e8' }),
      h('text', { x: PAD.l - 6, y: y + 4, 'text-anchor': 'end' }, Math.round(t)));
  });
}

/** Bars of [label, value] pairs. */
export function barChart(id, title, pairs, cls) {
  const max = niceMax(Math.max(1, ...pairs.map(([, v]) => v)));
  const iw = W - PAD.l - PAD.r;
  const ih = H - PAD.t - PAD.b;
  const slot = iw / Math.max(1, pairs.length);
  const bw = Math.min(48, slot * 0.7);
  const desc = pairs.map(([k, v]) => `${k}: ${v}`).join(', ');
  return h('svg', { id, class: 'chart', viewBox: `0 0 ${W} ${H}`, role: 'img', 'aria-labelledby': `${id}-t ${id}-d` },
    h('title', { id: `${id}-t` }, title),
    h('desc', { id: `${id}-d` }, desc),
    axes(max),
    pairs.map(([k, v], i) => {
      const bh = (v / max) * ih;
      const x = PAD.l + i * slot + (slot - bw) / 2;
      return h('g', { 'data-label': k, 'data-value': v },
        h('rect', { class: cls, x, y: PAD.t + ih - bh, width: bw, height: bh, rx: 2 },
          h('title', {}, `${k}: ${v}`)),
        h('text', { x: x + bw / 2, y: H - PAD.b + 14, 'text-anchor': 'middle' }, k),
        h('text', { x: x + bw / 2, y: PAD.t + ih - bh - 4, 'text-anchor': 'middle' }, v));
    }));
}

export const OUTCOMES = [
  ['answered', 'Answered'],
  ['not_answered', 'Not answered'],
  ['failed', 'Failed'],
  ['missed', 'Missed (inbound)'],
  ['in_progress', 'In progress'],
];

/** Stacked bars of outcomes per day (rows of {date, answered, not_answered, ...}). */
export function stackedByDay(id, title, days) {
  const max = niceMax(Math.max(1, ...days.map((d) => d.total)));
  const iw = W - PAD.l - PAD.r;
  const ih = H - PAD.t - PAD.b;
  const slot = iw / Math.max(1, days.length);
  const bw = Math.min(40, slot * 0.7);
  const every = Math.ceil(days.length / 12);
  const desc = days.map((d) => `${d.date}: ${d.total} calls (${d.inbound || 0} inbound), ${d.answered} answered, ${d.missed || 0} missed`).join('; ');
  return h('svg', { id, class: 'chart', viewBox: `0 0 ${W} ${H}`, role: 'img', 'aria-labelledby': `${id}-t ${id}-d` },
    h('title', { id: `${id}-t` }, title),
    h('desc', { id: `${id}-d` }, desc),
    axes(max),
    days.map((d, i) => {
      const x = PAD.l + i * slot + (slot - bw) / 2;
      let y = PAD.t + ih;
      const parts = OUTCOMES.filter(([k]) => d[k] > 0).map(([k, label]) => {
        const bh = (d[k] / max) * ih;
        y -= bh;
        return h('rect', { class: `c-${k}`, x, y, width: bw, height: bh, 'data-outcome': k, 'data-value': d[k] },
          h('title', {}, `${d.date} ${label}: ${d[k]}`));
      });
      return h('g', { 'data-date': d.date, 'data-total': d.total, 'data-inbound': d.inbound || 0 }, parts,
        i % every === 0 ? h('text', { x: x + bw / 2, y: H - PAD.b + 14, 'text-anchor': 'middle' }, d.date.slice(5)) : null);
    }));
}

export function legend() {
  return h('ul', { class: 'legend', 'aria-hidden': 'true' },
    OUTCOMES.map(([k, label]) => h('li', {}, h('i', { class: `c-${k}` }), label)));
}
