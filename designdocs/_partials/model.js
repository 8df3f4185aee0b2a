// The job model: what a job is, its queue path, when it is due and when its
// lease ends. Included (Jinja) by lib/job.js for the handlers and
// validate_doc_update, and straight into each map function, because
// pouchdb-server has no require() in maps. ES5 only: it runs in QuickJS,
// SpiderMonkey and pouchdb-server.

var STATES = {{ states|tojson }};
var WORKER_TYPE = {{ worker_type|tojson }};
var TOKEN_TYPE = {{ token_type|tojson }};  // a limit's token (lib/limits.js): it has a `state`, not a job's

function isObject(x) {
  return x !== null && typeof x === 'object' && !Array.isArray(x);
}

function isNumber(x) {
  return typeof x === 'number' && isFinite(x);
}

function isInteger(x) {
  return isNumber(x) && Math.floor(x) === x;
}

function isJob(doc) {
  return isObject(doc) && typeof doc._id === 'string' && doc._id.indexOf('_design/') !== 0 &&
    doc.type !== WORKER_TYPE && doc.type !== TOKEN_TYPE && ('queues' in doc || 'state' in doc);
}

var MAX_QUEUE_PARTS = {{ max_queue_parts }};
var MAX_QUEUE_PART_CHARS = {{ max_queue_part_chars }};

// What is wrong with a queue name or path, or null. One rule everywhere
// (queshot/jobs.py's queue_path too): a '/' in a name separates the parts of
// its path, so "email/welcome" and ["email", "welcome"] are one queue; a
// part of a path is a non-empty name without '/'. Bounded, because the
// pending view emits one row per prefix of the path.
function queuePathProblem(queues) {
  var parts = typeof queues === 'string' ? queues.split('/') : queues;
  if (!Array.isArray(parts) || parts.length === 0) {
    return 'a queue is a name ("email", "email/welcome") or a path of names (["email", "welcome"])';
  }
  if (parts.length > MAX_QUEUE_PARTS) {
    return "a queue path has at most " + MAX_QUEUE_PARTS + ' parts (got ' + parts.length + ')';
  }
  for (var i = 0; i < parts.length; i++) {
    if (typeof parts[i] !== 'string' || parts[i].length === 0) {
      return 'every part of a queue path must be a non-empty name';
    }
    if (parts[i].indexOf('/') >= 0) return "a part of a queue path cannot hold '/' (it separates the parts)";
    if (parts[i].length > MAX_QUEUE_PART_CHARS) {
      return 'a part of a queue path has at most ' + MAX_QUEUE_PART_CHARS + ' characters (got ' + parts[i].length + ')';
    }
  }
  return null;
}

// A queue as its path (see queuePathProblem), or null if it is not one; a
// worker on a path takes every job whose path starts with it.
function queuePath(queues) {
  if (queuePathProblem(queues)) return null;
  return typeof queues === 'string' ? queues.split('/') : queues;
}

// When a waiting job may run, which is also its place in line: its run_at if
// set, else when it arrived - `arrived_at`, the server's time, for a job
// whose `created_at` (the producer's clock) was off by more than the
// tolerance when the queue got it (lib/job.js's arrive), else `created_at`.
function dueAt(doc) {
  if (isNumber(doc.run_at)) return doc.run_at;
  if (isNumber(doc.arrived_at)) return doc.arrived_at;
  return isNumber(doc.created_at) ? doc.created_at : 0;
}

// When a running job's timeout ends its run (epoch ms), or null without one.
function timeoutAt(doc) {
  if (isNumber(doc.timeout) && isNumber(doc.claimed_at)) return doc.claimed_at + doc.timeout * 1000;
  return null;
}

// When a running job must be taken back: its lease end, or its timeout if earlier.
function deadline(doc) {
  var end = isNumber(doc.lease_expires_at) ? doc.lease_expires_at : 0;
  var timeout = timeoutAt(doc);
  return timeout === null ? end : Math.min(end, timeout);
}

// A waiting job that had finished (failed, complete or cancelled) and was set waiting
// again by hand, e.g. `"state": "inactive"` saved in Fauxton: its next claim is
// a fresh start (lib/job's freshStart), and its old error is not current.
// A job waiting for a retry has no failed_at, and attempts left.
function requeuedByHand(doc) {
  if (doc.state !== 'inactive') return false;
  if (isNumber(doc.failed_at) || isNumber(doc.completed_at) || isNumber(doc.cancelled_at)) {
    return true;
  }
  var max = isInteger(doc.max_attempts) ? doc.max_attempts : 1;
  return isInteger(doc.attempts) && doc.attempts >= max;
}
