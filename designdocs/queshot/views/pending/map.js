function (doc) {
  // Claimable jobs: one row per queue-path prefix, so that a worker on
  // ["email"] reads ["email", ...] jobs too, in priority (higher first) then
  // due-time order: key [path, -priority, due].
{% include '_partials/model.js' %}
  if (!isJob(doc) || doc.state !== 'inactive') return;
  var path = queuePath(doc.queues);
  if (!path) return;
  var priority = isNumber(doc.priority) ? doc.priority : 0;
  var due = dueAt(doc);
  for (var i = 1; i <= path.length; i++) {
    emit([path.slice(0, i), -priority, due], isNumber(doc.run_at) ? doc.run_at : null);
  }
}
