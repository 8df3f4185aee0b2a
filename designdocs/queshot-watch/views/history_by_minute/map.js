function (doc) {
  // The history counters (see the history view) time first, for a chart of
  // every queue: [minute, state, path] -> count (epoch ms of the minute's
  // start), _sum reduce: group_level 2 sums per minute and state over all
  // queues, 3 per queue. The shape of the activity view's rows.
{% include '_partials/model.js' %}
{% include '_partials/history.js' %}
  eachHistoryCount(doc, function (path, state, minute, n) {
    emit([minute, state, path], n);
  });
}
