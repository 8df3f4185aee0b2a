function (doc) {
  // Jobs by state, then by when they entered it: [state, since] -> summary.
  // `queshot jobs --state`, `queshot clean` (older than...), the dashboard's failed list.
{% include '_partials/model.js' %}
{% include '_partials/listing.js' %}
  if (!isJob(doc)) return;
  emit([doc.state, stateSince(doc)], summary(doc));
}
