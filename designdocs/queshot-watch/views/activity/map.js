function (doc) {
  // What happened per time bucket, for the dashboard's chart in one grouped
  // query: [bucket, state, path] for each job that finished (complete,
  // failed, cancelled) in that bucket, and [bucket, 'wait', path, i] for each
  // start, i being the histogram bucket of its wait from due to claim
  // (wait_buckets_ms upper bounds; the last i is "longer"). _count reduce:
  // percentiles come from the histogram, not from reading jobs.
{% include '_partials/model.js' %}
{% include '_partials/listing.js' %}
  var BUCKET_MS = {{ activity_bucket_ms|tojson }};
  var WAIT_BUCKETS = {{ wait_buckets_ms|tojson }};
  if (!isJob(doc)) return;
  var path = queuePath(doc.queues);
  if (!path) return;
  function bucket(t) { return t - t % BUCKET_MS; }
  if (doc.state !== 'inactive' && doc.state !== 'active') {
    emit([bucket(stateSince(doc)), doc.state, path], null);
  }
  if (doc.state !== 'inactive' && isNumber(doc.claimed_at)) {
    var wait = Math.max(0, doc.claimed_at - dueAt(doc));
    var i = 0;
    while (i < WAIT_BUCKETS.length && wait > WAIT_BUCKETS[i]) i++;
    emit([bucket(doc.claimed_at), 'wait', path, i], null);
  }
}
