// A worker's history counters (require('lib/history')): how many of its jobs
// ended complete or failed, per minute and queue, kept apart from the jobs so
// that a requeue, a delete or `queshot clean` does not rewrite the past. One
// document per worker per UTC hour, id "{{ history_doc_prefix }}<hour, as
// 20261206T050000Z>:<worker_id>", rewritten by its worker every few seconds
// (queshot/worker/history.py); the history views sum them. Documents older
// than {{ history_keep_hours }} hours are removed by any worker.

{% include '_partials/model.js' %}

var HISTORY_TYPE = {{ history_type|tojson }};
var PREFIX = {{ history_doc_prefix|tojson }};
var STATES = {{ history_states|tojson }};
var HOUR_MS = 3600000;
var KEEP_MS = {{ history_keep_hours }} * HOUR_MS;
var MAX_COUNT = {{ max_history_count }};
var MAX_AHEAD_MS = {{ max_last_seen_ahead_ms }};

function isHistory(doc) {
  return isObject(doc) && doc.type === HISTORY_TYPE;
}

function hourStamp(hour) {
  return new Date(hour).toISOString().replace(/\.\d+Z$/, 'Z').replace(/[-:]/g, '');
}

// What is wrong with one minute's counts ({"<queue path>": [complete, failed]}), or null.
function minuteProblem(minute, counts) {
  var like = "'counts' maps a minute of the hour (\"0\" to \"59\") to " +
    "{\"<queue path>\": [" + STATES.join(', ') + ']}';
  if (!/^([0-9]|[1-5][0-9])$/.test(minute) || !isObject(counts)) return like;
  for (var queue in counts) {
    var wrongQueue = queuePathProblem(queue);
    if (wrongQueue) return "'counts." + minute + "': " + JSON.stringify(queue).slice(0, 100) + ': ' + wrongQueue;
    var pair = counts[queue];
    if (!Array.isArray(pair) || pair.length !== STATES.length) return like;
    for (var i = 0; i < pair.length; i++) {
      if (!isInteger(pair[i]) || pair[i] < 0 || pair[i] > MAX_COUNT) {
        return "'counts' are whole numbers from 0 to " + MAX_COUNT;
      }
    }
  }
  return null;
}

// What is wrong with a history document, or null. `at` is the server's clock.
function problem(doc, at) {
  if (!isInteger(doc.hour) || doc.hour % HOUR_MS !== 0 || doc.hour < 0 || doc.hour > at + MAX_AHEAD_MS) {
    return "'hour' is the start of a UTC hour (epoch ms), not ahead of the server's clock";
  }
  if (typeof doc.worker_id !== 'string' || !doc.worker_id) return "'worker_id' names the worker that counts";
  var id = PREFIX + hourStamp(doc.hour) + ':' + doc.worker_id;
  if (doc._id !== id) return 'its id is ' + JSON.stringify(id).slice(0, 300);
  if (!isObject(doc.counts)) return "'counts' maps a minute of the hour to counts per queue";
  for (var minute in doc.counts) {
    var wrong = minuteProblem(minute, doc.counts[minute]);
    if (wrong) return wrong;
  }
  return null;
}

// What a worker account's rewrite of its own document may not do: lower a
// count (history only grows), or move to another hour or worker.
function shrinkProblem(old, doc) {
  if (old.hour !== doc.hour || old.worker_id !== doc.worker_id) return "'hour' and 'worker_id' stay";
  var before = isObject(old.counts) ? old.counts : {};
  for (var minute in before) {
    for (var queue in before[minute]) {
      var now = doc.counts[minute] && doc.counts[minute][queue];
      for (var i = 0; i < STATES.length; i++) {
        if (!Array.isArray(now) || !(now[i] >= before[minute][queue][i])) return 'its counts only grow';
      }
    }
  }
  return null;
}

// Whether a history document is past keeping (any worker may remove it).
function expired(doc, at) {
  return isNumber(doc.hour) && doc.hour + HOUR_MS <= at - KEEP_MS;
}

exports.HISTORY_TYPE = HISTORY_TYPE;
exports.isHistory = isHistory;
exports.problem = problem;
exports.shrinkProblem = shrinkProblem;
exports.expired = expired;
