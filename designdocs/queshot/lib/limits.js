// Limits that hold across every worker (require('lib/limits')): a queue
// admin's limit document, and the tokens workers hold to run a limited job.
//
// A limit is a document of `type` "{{ limit_type }}", id
// "{{ limit_doc_prefix }}<queue path joined by '/'>", with any of
// `concurrency` (jobs of the queue and its sub-queues running at once),
// `key_concurrency` (the same per job `limit_key`), `rate` and `key_rate`
// ({count, seconds}: job starts in any `seconds`, for the queue, per key;
// with `window` "fixed", in each window aligned on the epoch instead).
//
// A token is one of a limit's N slots: id "{{ token_doc_prefix }}" +
// JSON [limit, kind, key, slot], fixed by the rule, so that every worker
// racing for a slot writes the same document and CouchDB's revision check
// decides (ARCHITECTURE.md, "Limits"). Its holder is `worker_id` while
// `state` is "active" and `lease_expires_at` is ahead; a "free" token may be
// taken again from `free_at` (a rate token: `seconds` after its job ended,
// or for a fixed window the next window's start: the worker works it out,
// this checks no more than that nobody takes the token before it). The
// times are checked here by the server's clock.

{% include '_partials/model.js' %}

var LIMIT_TYPE = {{ limit_type|tojson }};
var LIMIT_PREFIX = {{ limit_doc_prefix|tojson }};
var TOKEN_PREFIX = {{ token_doc_prefix|tojson }};
var KINDS = {{ limit_kinds|tojson }};
var WINDOWS = {{ rate_windows|tojson }}; // the first is what a rate without `window` means
var MAX_LIMIT = {{ max_limit }};
var MAX_WINDOW_SECONDS = {{ max_lease_seconds }};
var MAX_LEASE_MS = {{ max_lease_seconds }} * 1000;
var MAX_EPOCH = {{ max_epoch_ms }};
var MAX_KEY_CHARS = {{ max_limit_key_chars }};

function isLimit(doc) {
  return isObject(doc) && doc.type === LIMIT_TYPE;
}

function isToken(doc) {
  return isObject(doc) && doc.type === TOKEN_TYPE;
}

function isRate(kind) {
  return kind === 'rate' || kind === 'key_rate';
}

function isKeyed(kind) {
  return kind === 'key_concurrency' || kind === 'key_rate';
}

function countProblem(field, value) {
  return isInteger(value) && value >= 1 && value <= MAX_LIMIT ? null :
    "'" + field + "' must be a whole number from 1 to " + MAX_LIMIT;
}

// What is wrong with a limit document, or null.
function limitProblem(doc) {
  var queue = queuePathProblem(doc.queue);
  if (queue) return "'queue': " + queue;
  var id = LIMIT_PREFIX + queuePath(doc.queue).join('/');
  if (doc._id !== id) return "a limit's id is '" + LIMIT_PREFIX + "' and its queue path joined by '/': " + JSON.stringify(id);
  var some = false;
  for (var key in doc) {
    if (key.charAt(0) === '_' || key === 'type' || key === 'queue') continue;
    if (KINDS.indexOf(key) < 0) return "a limit holds 'queue' and any of " + KINDS.join(', ') + ", not '" + key + "'";
    some = true;
    var value = doc[key];
    if (!isRate(key)) {
      var wrong = countProblem(key, value);
      if (wrong) return wrong;
      continue;
    }
    var like = "'" + key + "' is {\"count\": jobs, \"seconds\": window} (at most count starts in any such window)" +
      ', and optionally "window": ' + WINDOWS.map(JSON.stringify).join(' or ');
    if (!isObject(value) || value.count === undefined || value.seconds === undefined) return like;
    for (var field in value) if (field !== 'count' && field !== 'seconds' && field !== 'window') return like;
    if (countProblem(key + '.count', value.count)) return countProblem(key + '.count', value.count);
    if (!(isNumber(value.seconds) && value.seconds > 0 && value.seconds <= MAX_WINDOW_SECONDS)) {
      return "'" + key + ".seconds' must be a number above 0 and at most " + MAX_WINDOW_SECONDS;
    }
    if (value.window !== undefined && WINDOWS.indexOf(value.window) < 0) {
      return "'" + key + ".window' must be " + WINDOWS.map(JSON.stringify).join(' or ') +
        ' (starts in any window of `seconds`, the default, or in each one aligned on the epoch)';
    }
  }
  return some ? null : 'a limit needs at least one of ' + KINDS.join(', ');
}

function tokenId(limit, kind, key, slot) {
  return TOKEN_PREFIX + JSON.stringify([limit, kind, key, slot]);
}

function isEpoch(x) {
  return isNumber(x) && x >= 0 && x <= MAX_EPOCH;
}

// What is wrong with a token's content, or null.
function tokenShapeProblem(doc) {
  if (typeof doc.limit !== 'string' || queuePathProblem(doc.limit)) return "'limit' must be the limit's queue path joined by '/'";
  if (KINDS.indexOf(doc.kind) < 0) return "'kind' must be one of " + KINDS.join(', ');
  var keyed = isKeyed(doc.kind);
  if (keyed ? !(typeof doc.key === 'string' && doc.key.length > 0 && doc.key.length <= MAX_KEY_CHARS) : doc.key !== null) {
    return keyed ? "'key' must be the job's limit_key" : "'key' must be null for a queue-wide limit";
  }
  if (!(isInteger(doc.slot) && doc.slot >= 0 && doc.slot < MAX_LIMIT)) return "'slot' must be a whole number from 0 to " + (MAX_LIMIT - 1);
  if (doc._id !== tokenId(doc.limit, doc.kind, doc.key, doc.slot)) {
    return "a token's id is " + JSON.stringify(tokenId(doc.limit, doc.kind, doc.key, doc.slot));
  }
  if (typeof doc.worker_id !== 'string' || !doc.worker_id) return "'worker_id' must name the worker that holds or held it";
  if (typeof doc.job !== 'string' || !doc.job) return "'job' must name the job it is held for";
  if (doc.state === 'active') return isEpoch(doc.lease_expires_at) ? null : "an 'active' token needs 'lease_expires_at' (epoch ms)";
  if (doc.state === 'free') return isEpoch(doc.free_at) ? null : "a 'free' token needs 'free_at' (epoch ms)";
  return "'state' must be 'active' (held) or 'free'";
}

// What is wrong with writing `doc` over `old` (null: a new token) at server
// time `now` by account `name`, or null. Only its holder writes a held
// token until its lease ends; nobody takes a free one before `free_at`.
function tokenProblem(doc, old, name, isAdmin, now) {
  var shape = tokenShapeProblem(doc);
  if (shape) return 'invalid token: ' + shape;
  if (!isAdmin && doc.user !== name) return "a token names the account that writes it: 'user' " + JSON.stringify(name);
  if (doc.state === 'active' && doc.lease_expires_at > now + MAX_LEASE_MS) {
    return "a token's lease ends at most " + (MAX_LEASE_MS / 1000) + " s after the server's clock";
  }
  if (!old || isAdmin) return null;
  if (old.state === 'active' && old.lease_expires_at > now && old.worker_id !== doc.worker_id) {
    return 'this token is held by ' + old.worker_id + ' until ' + new Date(old.lease_expires_at).toISOString();
  }
  if (old.state === 'free' && old.free_at > now && doc.state === 'active') {
    return 'this token is free again only at ' + new Date(old.free_at).toISOString();
  }
  return null;
}

// The rules of validate_doc_update for limits and tokens: a reason to refuse
// the write, null to let it through, or undefined if `doc` and `old` are
// neither (the caller's other rules decide).
function check(doc, old, name, isAdmin, isWorker, now) {
  if (doc._deleted) {
    if (isLimit(old)) return isAdmin ? null : 'only a queue admin may remove a limit';
    if (!isToken(old)) return undefined;
    // a contested take leaves branches, which the settle step deletes (as a claim's)
    return isWorker ? null : 'only workers remove limit tokens';
  }
  if (isLimit(doc) || isLimit(old)) {
    if (!isAdmin) return 'only a queue admin may write limits';
    if (!isLimit(doc) || (old && !isLimit(old))) return 'a limit and other documents do not become one another';
    var bad = limitProblem(doc);
    return bad ? 'invalid limit: ' + bad : null;
  }
  if (isToken(doc) || isToken(old)) {
    if (!isWorker) return 'only workers hold limit tokens';
    if (!isToken(doc) || (old && !isToken(old))) return 'a token and other documents do not become one another';
    return tokenProblem(doc, old, name, isAdmin, now);
  }
  return undefined;
}

exports.LIMIT_TYPE = LIMIT_TYPE;
exports.TOKEN_TYPE = TOKEN_TYPE;
exports.isLimit = isLimit;
exports.isToken = isToken;
exports.limitProblem = limitProblem;
exports.tokenId = tokenId;
exports.check = check;
