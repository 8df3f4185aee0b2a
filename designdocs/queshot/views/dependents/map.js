function (doc) {
  // Blocked jobs by each job they still wait for: dependency id -> null.
  // A batch of finished jobs' dependents, in one query (keys).
{% include '_partials/model.js' %}
  if (!isJob(doc) || doc.state !== 'blocked' || !Array.isArray(doc.waiting_for)) return;
  for (var i = 0; i < doc.waiting_for.length; i++) {
    emit(doc.waiting_for[i], null);
  }
}
