// The Limits panel: each queue's limit (`queshot-limit:<path>`, see
// ARCHITECTURE.md "Limits") with its kinds and sizes, how many of its tokens
// are in use now (`queshot-token:` documents "active" on a lease not run out;
// a rate's given-back tokens still waiting out the window apart), and the jobs
// the live workers report held back by a full limit (their status documents'
// `limits.jobs_held_back`, summed: a worker counts them, not per limit).
// Hidden when no queue has a limit. Tokens are read by id range only while
// there are limits: they are not jobs, and no job list shows them.
'use strict';

const { LIMIT_PREFIX, TOKEN_PREFIX, LIMIT_KINDS } = QUESHOT;
const TOKENS_READ = 5000; // token documents read at most (the panel says "or more")
const KEYED = new Set(['key_concurrency', 'key_rate']);

function idRange(prefix) {
  return { startkey: prefix, endkey: prefix + '\ufff0', include_docs: true };
}

// The limits and, when there are any, their tokens: {limits, tokens, capped}.
async function readLimits() {
  const limits = (await query('_all_docs', idRange(LIMIT_PREFIX))).rows.filter((row) => row.doc);
  if (!limits.length) return { limits, tokens: [], capped: false };
  const tokens = (await query('_all_docs', { ...idRange(TOKEN_PREFIX), limit: TOKENS_READ })).rows
    .filter((row) => row.doc);
  return { limits, tokens, capped: tokens.length >= TOKENS_READ };
}

// A token's group as its id names it ([limit, kind, key, slot], lib/limits.js's tokenId), or null.
function tokenGroup(id) {
  try {
    const [limit, kind, key] = JSON.parse(id.slice(TOKEN_PREFIX.length));
    return typeof limit === 'string' && typeof kind === 'string' ? { limit, kind, key } : null;
  } catch (error) {
    return null;
  }
}

// Per "limit kind": tokens in use now, per key, and rate tokens waiting out their window.
function tokenUse(tokens, now) {
  const use = new Map();
  for (const row of tokens) {
    const group = tokenGroup(row.id);
    if (!group) continue;
    const name = group.limit + ' ' + group.kind;
    if (!use.has(name)) use.set(name, { active: 0, cooling: 0, keys: new Map() });
    const entry = use.get(name);
    const t = row.doc;
    if (t.state === 'active' && typeof t.lease_expires_at === 'number' && t.lease_expires_at > now) {
      entry.active += 1;
      entry.keys.set(group.key, (entry.keys.get(group.key) || 0) + 1);
    } else if (t.state === 'free' && typeof t.free_at === 'number' && t.free_at > now) {
      entry.cooling += 1;
    }
  }
  return use;
}

function sizeText(kind, value) {
  if (isPlainObject(value)) {
    return shown(value.count) + ' starts per ' + shown(value.seconds) + ' s' + (KEYED.has(kind) ? ' per key' : '') +
      (value.window === 'fixed' ? ' (fixed windows)' : '');
  }
  return shown(value) + ' at once' + (KEYED.has(kind) ? ' per key' : '');
}

function inUseText(kind, value, entry) {
  const size = isPlainObject(value) ? value.count : value;
  if (!entry || (!entry.active && !entry.cooling)) return KEYED.has(kind) ? '0, no key holds one' : '0 of ' + shown(size);
  let text;
  if (KEYED.has(kind)) {
    const fullest = Math.max(0, ...entry.keys.values());
    text = entry.active + ' over ' + counted(entry.keys.size, 'key') + ', at most ' + fullest + ' of ' + shown(size) + ' for one';
  } else {
    text = entry.active + ' of ' + shown(size);
  }
  return text + (entry.cooling ? ' (+' + entry.cooling + ' waiting out the window)' : '');
}

function renderLimits({ limits, tokens, capped }, workerRows) {
  $('limits-panel').hidden = !limits.length;
  if (!limits.length) return;
  const now = Date.now();
  const use = tokenUse(tokens, now);
  const body = limits.flatMap((row) => {
    const name = queueText(row.doc.queue);
    return LIMIT_KINDS.filter((kind) => row.doc[kind] !== undefined).map((kind) =>
      el('tr', { data: { limit: name, kind } },
        el('th', {}, el('bdi', {}, name)),
        el('td', {}, kind),
        el('td', {}, sizeText(kind, row.doc[kind])),
        el('td', { className: 'in-use' }, inUseText(kind, row.doc[kind], use.get(name + ' ' + kind)))));
  });
  replaceRows($('limits'), headRow(['queue'], ['limit'], ['size'], ['tokens in use']), body, 'no limits');
  const live = workerRows.map((row) => row.doc).filter((w) => w && !workerGone(w, now));
  const heldBack = live.reduce((sum, w) => {
    const n = isPlainObject(w.limits) ? w.limits.jobs_held_back : 0;
    return sum + (typeof n === 'number' && Number.isFinite(n) ? n : 0);
  }, 0);
  const note = $('limits-held-back');
  note.dataset.heldBack = heldBack;
  note.textContent = counted(heldBack, 'job') + ' held back by a full limit, as ' +
    counted(live.length, 'live worker') + (live.length === 1 ? ' reports' : ' report') +
    (capped ? ' · tokens: the first ' + TOKENS_READ + ' read' : '');
}
