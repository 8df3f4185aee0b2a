// Throughput and latency over time: jobs that ended complete or failed per
// time bucket as stacked bars, drawn as SVG by hand, with the queue's depth
// now and the wait from due to start (p50, p95).
// The bars come from the workers' history counters (queshot/history.py), not
// from the jobs, so a requeue, a delete or `queshot clean` leaves the past as
// it was: the last hour from `history_by_minute` ([minute, state, path] ->
// n), the last day and week from `history` ([path, state, day, hour] -> n,
// its documents kept 8 days), summed into coarser bars here. The waits come
// from the `activity` view ([bucket, 'wait', path, histogram bucket],
// _count): the percentiles are "at most" figures at the histogram's
// resolution (WAIT_BUCKETS_MS upper bounds). No job is read.
'use strict';

const { ACTIVITY_BUCKET_MS, WAIT_BUCKETS_MS } = QUESHOT;
const HOUR_MS = 60 * MINUTE_MS; // MINUTE_MS: cron.js's
const DAY_MS = 24 * HOUR_MS;
// Each window: its bars and how long each is; hourly rows sum into day and week bars.
const WINDOWS = {
  hour: { bars: 60, barMs: MINUTE_MS },
  day: { bars: 24, barMs: HOUR_MS },
  week: { bars: 56, barMs: 3 * HOUR_MS },
};
const CHART_W = 600;
const CHART_H = 150;
const CHART_PAD = 40;  // room for the count labels left of the bars
const CHART_FONT_PX = 13;  // the labels' size on screen, whatever the chart's width
const CHART_AXIS = 18;  // the time axis, this far above the bottom, its labels below it
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

// The window's counts as [{time, state, path, n}]: bucket start (epoch ms), per queue.
async function readHistory(window, first) {
  if (window.barMs === MINUTE_MS) {
    const rows = (await query(WATCH_PATH + '/_view/history_by_minute', {
      startkey: [first], endkey: [{}], group_level: 3,
    })).rows;
    return rows.map((row) => ({ time: row.key[0], state: row.key[1], path: row.key[2], n: row.value }));
  }
  const path = shared.queue ? shared.queues.get(shared.queue) : null;
  const range = path ? { startkey: [path], endkey: [path, {}] } : {};
  const rows = (await query(WATCH_PATH + '/_view/history', { ...range, group_level: 4 })).rows;
  return rows.filter((row) => row.key[3] >= first)
    .map((row) => ({ time: row.key[3], state: row.key[1], path: row.key[0], n: row.value }));
}

// How long each start waited after its job was due, over the window (a day at most).
async function readWaits(windowMs, now) {
  const since = now - Math.min(windowMs, DAY_MS);
  const answer = await query(WATCH_PATH + '/_view/activity', {
    startkey: [since - since % ACTIVITY_BUCKET_MS], endkey: [now, {}], group_level: 4,
  });
  const histogram = new Array(WAIT_BUCKETS_MS.length + 1).fill(0);
  for (const row of answer.rows) {
    const [, kind, path, index] = row.key;
    if (kind === 'wait' && inQueueFilter(path)) histogram[index] += row.value;
  }
  return histogram;
}

async function refreshChart() {
  const name = $('chart-window').value;
  const window = WINDOWS[name];
  const windowMs = window.bars * window.barMs;
  const now = Date.now();
  const first = now - now % window.barMs - (window.bars - 1) * window.barMs;
  const [counts, histogram] = await Promise.all([readHistory(window, first), readWaits(windowMs, now)]);
  const bars = Array.from({ length: window.bars }, () => ({}));
  const totals = {};
  for (const { time, state, path, n } of counts) {
    if (!inQueueFilter(path) || time < first) continue;
    const bar = bars[Math.min(window.bars - 1, Math.floor((time - first) / window.barMs))];
    bar[state] = (bar[state] || 0) + n;
    totals[state] = (totals[state] || 0) + n;
  }
  drawBars(bars, first, window.barMs, windowMs);
  $('chart-caption').textContent = 'jobs ended per ' + age(window.barMs) + ' (complete green, failed red)' +
    (shared.queue ? ' in ' + shared.queue : ', all queues') + '; kept when jobs are requeued, deleted or cleaned';
  const depth = { waiting: 0, scheduled: 0, running: 0 };
  for (const [queue, queueCounts] of shared.counts) {
    if (shared.queue && queue !== shared.queue) continue;
    depth.waiting += queueCounts.inactive || 0;
    depth.scheduled += queueCounts.scheduled || 0;
    depth.running += queueCounts.active || 0;
  }
  const summary = $('chart-summary');
  const ended = Object.entries(totals).map(([state, n]) => n + ' ' + state).join(', ') || 'nothing ended';
  summary.textContent = ended + ' in the last ' + name + ' · depth now: ' + depth.waiting + ' waiting, ' +
    depth.scheduled + ' scheduled, ' + depth.running + ' running · wait to start' +
    (windowMs > DAY_MS ? ' (last day)' : '') + ': p50 ' + waitText(percentile(histogram, 0.5)) +
    ', p95 ' + waitText(percentile(histogram, 0.95));
  Object.assign(summary.dataset, {
    complete: totals.complete || 0, failed: totals.failed || 0,
    started: histogram.reduce((a, b) => a + b, 0), readAt: now,
  });
}

function drawBars(bars, first, barMs, windowMs) {
  const kinds = [...new Set(bars.flatMap((bar) => Object.keys(bar)))]
    .sort((a, b) => (a === 'complete' ? -1 : b === 'complete' ? 1 : a.localeCompare(b)));
  const highest = Math.max(1, ...bars.map((bar) => Object.values(bar).reduce((a, b) => a + b, 0)));
  const width = (CHART_W - CHART_PAD) / bars.length;
  const scale = (CHART_H - CHART_AXIS - 8) / highest;
  const shapes = [];
  bars.forEach((bar, i) => {
    let y = CHART_H - CHART_AXIS;
    for (const kind of kinds) {
      const n = bar[kind] || 0;
      if (!n) continue;
      const h = n * scale;
      y -= h;
      shapes.push(svg('rect', {
        x: CHART_PAD + i * width + 0.5, y, width: Math.max(1, width - 1), height: h,
        style: 'fill: ' + (BAR_COLORS[kind] || 'var(--muted)'), 'data-bar': i, 'data-kind': kind, 'data-count': n,
      }, svg('title', {}, n + ' ' + kind + ' from ' + clock(first + i * barMs))));
    }
  });
  const label = (x, y, text, anchor) => svg('text', { x, y, 'text-anchor': anchor || 'start' }, text);
  $('chart').replaceChildren(svg('svg', { viewBox: '0 0 ' + CHART_W + ' ' + CHART_H, role: 'img' },
    svg('line', { x1: CHART_PAD, y1: CHART_H - CHART_AXIS, x2: CHART_W, y2: CHART_H - CHART_AXIS, class: 'axis' }),
    label(CHART_PAD - 5, 13, String(highest), 'end'),
    label(CHART_PAD - 5, CHART_H - CHART_AXIS, '0', 'end'),
    label(CHART_PAD, CHART_H - 3, '-' + age(windowMs)),
    label(CHART_W, CHART_H - 3, 'now', 'end'),
    ...shapes));
  fitChartLabels();
}

// The drawing scales with its card; its labels keep one size on screen, as
// drawn and whenever the card changes width.
function fitChartLabels() {
  const drawing = $('chart').firstChild;
  if (!drawing) return;
  const box = drawing.getBoundingClientRect();  // the drawing is fitted into it, both ways
  const scale = Math.min(box.width / CHART_W, box.height / CHART_H);
  if (scale > 0) drawing.style.fontSize = (CHART_FONT_PX / scale) + 'px';
}

function startChart() {
  $('chart-window').addEventListener('change', () => refreshChart().catch(() => {}));
  new ResizeObserver(fitChartLabels).observe($('chart'));
}
