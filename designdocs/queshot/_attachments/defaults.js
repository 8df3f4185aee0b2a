// The queue's constants for the dashboard, rendered when pushed from the same
// context (designdocs/context.json) as the JavaScript CouchDB runs and
// queshot's Python: one source for all three. And the job model itself
// (_partials/model.js, which the views and validate_doc_update include), in a
// scope of its own: the dashboard reads a queue path by the very function the
// server does, so "a/b" and ["a", "b"] are one queue here too.
'use strict';

const QUESHOT_MODEL = (function () {
{% include '_partials/model.js' %}
  return Object.freeze({ queuePath: queuePath, isJob: isJob, dueAt: dueAt });
})();

const QUESHOT = Object.freeze({
  STATES: {{ states|tojson }},
  FINISHED_STATES: {{ finished_states|tojson }},
  WORKER_PREFIX: {{ worker_doc_prefix|tojson }},
  SCHEDULE_PREFIX: {{ schedule_doc_prefix|tojson }},
  GONE_AFTER_LEASES: {{ worker_gone_after_leases|tojson }},
  DEFAULT_LEASE_SECONDS: {{ lease_seconds|tojson }},
  PAUSE_FIELD: {{ pause_field|tojson }},
  LIMIT_PREFIX: {{ limit_doc_prefix|tojson }},
  TOKEN_PREFIX: {{ token_doc_prefix|tojson }},
  LIMIT_KINDS: {{ limit_kinds|tojson }},
  SCHEDULE_TIMEZONE: {{ schedule_timezone|tojson }},
  ACTIVITY_BUCKET_MS: {{ activity_bucket_ms|tojson }},
  WAIT_BUCKETS_MS: {{ wait_buckets_ms|tojson }},
});
