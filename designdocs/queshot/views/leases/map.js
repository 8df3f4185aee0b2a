function (doc) {
  // Running jobs by the time they must be taken back (lease end or timeout).
{% include '_partials/model.js' %}
  if (!isJob(doc) || doc.state !== 'active') return;
  emit(deadline(doc), doc.worker_id);
}
