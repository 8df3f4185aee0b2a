function (doc) {
  // Jobs by queue path, state, then when they entered it: [path, state, since]
  // -> summary. `queshot jobs --queue`, the oldest waiting job per queue.
{% include '_partials/model.js' %}
{% include '_partials/listing.js' %}
  if (!isJob(doc)) return;
  var path = queuePath(doc.queues);
  if (!path) return;
  emit([path, doc.state, stateSince(doc)], summary(doc));
}
