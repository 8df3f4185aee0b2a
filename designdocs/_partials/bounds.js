// The bounds no sane queshot document breaks (designdocs/context.json;
// queshot/jobs.py reads the same numbers): its size, how deep its values
// nest, and the range of every number. They keep the readers safe - a worker's
// feed thread, `queshot show`, the dashboard - and the handlers' arithmetic
// finite. Included (Jinja) by lib/job.js and lib/schedule.js. ES5 only.

var MAX_DOC_CHARS = {{ max_job_chars }};
var MAX_NEW_JOB_CHARS = {{ max_new_job_chars }};
var MAX_DEPTH = {{ max_depth }};
var MAX_EPOCH_MS = {{ max_epoch_ms }};
var MAX_LOG_MSG_CHARS = {{ max_log_msg_chars }};
var MAX_ERROR_MESSAGE_CHARS = {{ max_error_message_chars }};
var MAX_TRACEBACK_CHARS = {{ max_traceback_chars }};
var MIN_LEASE_SECONDS = {{ min_lease_seconds }};
var MAX_LEASE_SECONDS = {{ max_lease_seconds }};

// Every numeric field a queshot document may carry: [lowest, highest, whole].
// `stalls` may go one past the most `max_stalls` allows: the stall that fails
// the job. A timeout of 0 would time every run out at once: its lowest is the
// smallest number above 0.
var TIMESTAMP = [0, MAX_EPOCH_MS, false];
var NUMBER_BOUNDS = {
  priority: [-{{ max_priority }}, {{ max_priority }}, true],
  progress: [0, 100, false],
  attempts: [0, {{ max_attempts_bound }}, true],
  max_attempts: [1, {{ max_attempts_bound }}, true],
  stalls: [0, {{ max_stalls_bound }} + 1, true],
  max_stalls: [0, {{ max_stalls_bound }}, true],
  timeout: [Number.MIN_VALUE, {{ max_timeout_seconds }}, false],
  lease_seconds: [MIN_LEASE_SECONDS, MAX_LEASE_SECONDS, false],
  backoff_seconds: [0, {{ max_backoff_seconds_bound }}, false],
  run_at: TIMESTAMP, created_at: TIMESTAMP, arrived_at: TIMESTAMP, claimed_at: TIMESTAMP, lease_expires_at: TIMESTAMP,
  completed_at: TIMESTAMP, failed_at: TIMESTAMP, cancelled_at: TIMESTAMP,
  cancel_requested_at: TIMESTAMP, slot: TIMESTAMP, enabled_at: TIMESTAMP, run_requested_at: TIMESTAMP, last_seen: TIMESTAMP
};

function isEpochMs(x) {
  return typeof x === 'number' && isFinite(x) && x >= 0 && x <= MAX_EPOCH_MS;
}

function shown(x) {
  return typeof x === 'number' ? String(x) : typeof x === 'string' ? 'a string' : Array.isArray(x) ? 'an array' :
    x === null ? 'null' : typeof x === 'object' ? 'an object' : typeof x;
}

// What is wrong with `value` as the number field `field`, or null.
function numberProblem(field, value) {
  var bounds = NUMBER_BOUNDS[field];
  if (typeof value === 'number' && isFinite(value) && value >= bounds[0] && value <= bounds[1] &&
      (!bounds[2] || Math.floor(value) === value)) {
    return null;
  }
  var low = bounds[0] === Number.MIN_VALUE ? 'above 0 and at most ' : 'from ' + bounds[0] + ' to ';
  var what = bounds === TIMESTAMP ? 'a time in epoch milliseconds, from 0 to ' + MAX_EPOCH_MS + ' (year 9999)' :
    (bounds[2] ? 'a whole number ' : 'a number ') + low + bounds[1];
  return "'" + field + "' must be " + what + ' (got ' + shown(value) + ')';
}

// Whether a value nests deeper than `max` levels (an object or array is one
// level, each one inside it one more). Walked with a stack of its own, never
// by recursion, whatever the depth.
function nestsDeeper(value, max) {
  var stack = [[value, 1]];
  while (stack.length) {
    var top = stack.pop();
    var node = top[0];
    if (node === null || typeof node !== 'object') continue;
    if (top[1] > max) return true;
    for (var key in node) {
      if (Object.prototype.hasOwnProperty.call(node, key)) stack.push([node[key], top[1] + 1]);
    }
  }
  return false;
}

function sameJSON(a, b) {
  return JSON.stringify(a) === JSON.stringify(b);
}

// What a failing write may add to a document (an error, its copy in
// `errors`, a log line, their JSON punctuation): a worker's `unclaimable`
// may grow a document already over the bound by that much.
var FAILURE_GROWTH = 2 * MAX_ERROR_MESSAGE_CHARS + MAX_LOG_MSG_CHARS + 1000;

// What a write breaks of the size and depth bounds, or null: a top-level field
// the write changes that nests deeper than MAX_DEPTH (the document itself is
// the first level), and a document made larger past MAX_DOC_CHARS (a new job:
// past MAX_NEW_JOB_CHARS). A stored document from before the bounds can
// still be moved in the fields they do not touch, and failed (`failing`).
function sizeProblem(doc, old, isNewJob, failing) {
  for (var field in doc) {
    if (nestsDeeper(doc[field], MAX_DEPTH - 1) && !(old && sameJSON(old[field], doc[field]))) {
      return "'" + field + "' nests deeper than " + MAX_DEPTH + ' levels (the document is the first)';
    }
  }
  var size = JSON.stringify(doc).length;
  var limit = isNewJob ? MAX_NEW_JOB_CHARS : MAX_DOC_CHARS;
  if (size > limit && !(old && size <= JSON.stringify(old).length + (failing ? FAILURE_GROWTH : 0))) {
    return 'the document has ' + size + ' characters of JSON, more than the ' + limit + ' allowed' +
      (isNewJob ? ' for a new job' : '');
  }
  return null;
}

// A string cut to at most `max` characters, saying so: what the handlers do
// to the text they are given (log lines, error messages, tracebacks).
function truncated(text, max) {
  text = String(text);
  if (text.length <= max) return text;
  var mark = '... (' + (text.length - max) + ' more characters cut)';
  return text.slice(0, Math.max(0, max - mark.length)) + mark;
}
