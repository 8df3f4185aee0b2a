// Throughput and latency over time: jobs finished per time bucket (complete,
// failed, and any other final state) as stacked bars, drawn as SVG by hand,
// with the queue's depth now and the wait from due to start (p50, p95).
// One grouped query of the `activity` view ([bucket, state, path] and
// [bucket, 'wait', path, histogram bucket], _count): no job is read. The
// percentiles come from that histogram (WAIT_BUCKETS_MS upper bounds), so
// they are "at most" figures at the histogram's resolution.
'use strict';

const { ACTIVITY_BUCKET_MS, WAIT_BUCKETS_MS } = QUESHOT;
const BARS = 60;
const CHART_W = 600;
const CHART_H = 150;
const CHART_PAD = 28;
const SVG_NS = 'http://www.w3.org/2000/svg';
const BAR_COLORS = { complete: 'var(--complete)', failed: 'var(--failed)' };

function svg(tag, attributes, ...children) {
  const node = document.createElementNS(SVG_NS, tag);
  for (const [name, value] of Object.entries(attributes)) node.setAttribute(name, String(value));
  node.append(...children);
  return node;
}

function inQueueFilter(path) {
  if (!shared.queue) return true;
  const wanted = shared.queues.get(shared.queue) || [];
  return JSON.stringify(path) === JSON.stringify(wanted);
}

// The wait that `share` of the starts were no longer than: a histogram bucket's upper bound.
function percentile(histogram, share) {
  const total = histogram.reduce((a, b) => a + b, 0);
  if (!total) return null;
  let seen = 0;
  for (let i = 0; i < histogram.length; i++) {
    seen += histogram[i];
    if (seen >= share * total) return i < WAIT_BUCKETS_MS.length ? WAIT_BUCKETS_MS[i] : Infinity;
  }
  return Infinity;
}

function waitText(ms) {
  if (ms === null) return '-';
  if (ms === Infinity) return 'over ' + age(WAIT_BUCKETS_MS[WAIT_BUCKETS_MS.length - 1]);
  return '≤ ' + (ms < 1000 ? ms + ' ms' : age(ms));
}

async function refreshChart() {
  const windowMs = Number($('chart-window').value) * 60000;
  const now = Date.now();
  const first = now - windowMs - (now - windowMs) % ACTIVITY_BUCKET_MS;
  const answer = await query(WATCH_PATH + '/_view/activity', {
    startkey: [first], endkey: [now, {}], group_level: 4,
  });
  const barMs = windowMs / BARS;
  const bars = Array.from({ length: BARS }, () => ({}));
  const histogram = new Array(WAIT_BUCKETS_MS.length + 1).fill(0);
  const totals = {};
  for (const row of answer.rows) {
    const [bucket, kind, path, index] = row.key;
    if (!inQueueFilter(path)) continue;
    if (kind === 'wait') {
      histogram[index] += row.value;
      continue;
    }
    const bar = Math.min(BARS - 1, Math.max(0, Math.floor((bucket - (now - windowMs)) / barMs)));
    bars[bar][kind] = (bars[bar][kind] || 0) + row.value;
    totals[kind] = (totals[kind] || 0) + row.value;
  }
  drawBars(bars, barMs, windowMs);
  $('chart-caption').textContent = 'jobs finished per ' + age(barMs) + ' (complete green, failed red)' +
    (shared.queue ? ' in ' + shared.queue : ', all queues');
  const depth = { waiting: 0, scheduled: 0, running: 0 };
  for (const [name, counts] of shared.counts) {
    if (shared.queue && name !== shared.queue) continue;
    depth.waiting += counts.inactive || 0;
    depth.scheduled += counts.scheduled || 0;
    depth.running += counts.active || 0;
  }
  const summary = $('chart-summary');
  const finished = Object.entries(totals).map(([kind, n]) => n + ' ' + kind).join(', ') || 'nothing finished';
  summary.textContent = finished + ' · depth now: ' + depth.waiting + ' waiting, ' + depth.scheduled + ' scheduled, ' +
    depth.running + ' running · wait to start: p50 ' + waitText(percentile(histogram, 0.5)) +
    ', p95 ' + waitText(percentile(histogram, 0.95));
  Object.assign(summary.dataset, {
    complete: totals.complete || 0, failed: totals.failed || 0,
    started: histogram.reduce((a, b) => a + b, 0),
  });
}

function drawBars(bars, barMs, windowMs) {
  const kinds = [...new Set(bars.flatMap((bar) => Object.keys(bar)))]
    .sort((a, b) => (a === 'complete' ? -1 : b === 'complete' ? 1 : a.localeCompare(b)));
  const highest = Math.max(1, ...bars.map((bar) => Object.values(bar).reduce((a, b) => a + b, 0)));
  const width = (CHART_W - CHART_PAD) / BARS;
  const scale = (CHART_H - 20) / highest;
  const shapes = [];
  bars.forEach((bar, i) => {
    let y = CHART_H - 14;
    for (const kind of kinds) {
      const n = bar[kind] || 0;
      if (!n) continue;
      const h = n * scale;
      y -= h;
      shapes.push(svg('rect', {
        x: CHART_PAD + i * width + 0.5, y, width: Math.max(1, width - 1), height: h,
        style: 'fill: ' + (BAR_COLORS[kind] || 'var(--muted)'), 'data-bar': i, 'data-kind': kind, 'data-count': n,
      }, svg('title', {}, n + ' ' + kind + ', ' + age((BARS - i) * barMs) + ' ago')));
    }
  });
  const label = (x, y, text, anchor) => svg('text', { x, y, 'text-anchor': anchor || 'start' }, text);
  $('chart').replaceChildren(svg('svg', { viewBox: '0 0 ' + CHART_W + ' ' + CHART_H, role: 'img' },
    svg('line', { x1: CHART_PAD, y1: CHART_H - 14, x2: CHART_W, y2: CHART_H - 14, class: 'axis' }),
    label(CHART_PAD - 4, 12, String(highest), 'end'),
    label(CHART_PAD - 4, CHART_H - 14, '0', 'end'),
    label(CHART_PAD, CHART_H - 2, '-' + age(windowMs)),
    label(CHART_W, CHART_H - 2, 'now', 'end'),
    ...shapes));
}

function startChart() {
  $('chart-window').addEventListener('change', () => refreshChart().catch(() => {}));
}
