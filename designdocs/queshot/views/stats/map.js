function (doc) {
  // Jobs per queue, state and when they entered it: [path, state, since] ->
  // revision. group_level=1 counts per queue, 2 per queue and state; a
  // finished state's rows, oldest first, are what a retention rule removes.
{% include '_partials/model.js' %}
{% include '_partials/listing.js' %}
  if (!isJob(doc)) return;
  emit([queuePath(doc.queues) || doc.queues, doc.state, stateSince(doc)], doc._rev);
}
