function (doc) {
  // Jobs per queue and state: group_level=1 per queue, 2 per queue and state.
{% include '_partials/model.js' %}
  if (!isJob(doc)) return;
  emit([queuePath(doc.queues) || doc.queues, doc.state], null);
}
