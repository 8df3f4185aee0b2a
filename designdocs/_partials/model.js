// The job model: what a job is, its queue path, when it is due and when its
// lease ends. Included (Jinja) by lib/job.js for the handlers and
// validate_doc_update, and straight into each map function, because
// pouchdb-server has no require() in maps. ES5 only: it runs in QuickJS,
// SpiderMonkey and pouchdb-server.

var STATES = {{ states|tojson }};
var WORKER_TYPE = {{ worker_type|tojson }};

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
    doc.type !== WORKER_TYPE && ('queues' in doc || 'state' in doc);
}

// A queue is a name or a path of names (["email", "welcome"]); a worker on a
// path takes every job whose path starts with it.
function queuePath(queues) {
  if (typeof queues === 'string') return queues.length ? [queues] : null;
  if (!Array.isArray(queues) || queues.length === 0) return null;
  for (var i = 0; i < queues.length; i++) {
    if (typeof queues[i] !== 'string' || queues[i].length === 0) return null;
  }
  return queues;
}

// When a waiting job may run: its run_at if set, else when it was created.
function dueAt(doc) {
  if (isNumber(doc.run_at)) return doc.run_at;
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
