function (doc) {
  // Jobs that ended complete or failed, from the workers' history counters
  // (lib/history.js): [path, state, day, hour, minute] -> count, each time the
  // epoch ms of the start of its UTC day, hour, minute. _sum reduce:
  // group_level 3 sums per day, 4 per hour, 5 per minute; a range from
  // [path, state, day, hour, minute] of a moment sums since then. Unlike the
  // jobs, these documents outlive requeue, delete and clean.
{% include '_partials/model.js' %}
{% include '_partials/history.js' %}
  eachHistoryCount(doc, function (path, state, minute, n) {
    var hour = minute - minute % 3600000;
    emit([path, state, minute - minute % 86400000, hour, minute], n);
  });
}
