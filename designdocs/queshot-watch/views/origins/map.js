function (doc) {
  // Jobs by where they came from: [origin, state] -> 1 (reduce _count).
  // `queshot stats`' producers; a job with no origin is the queue's own.
{% include '_partials/model.js' %}
  if (!isJob(doc) || typeof doc[{{ origin_field|tojson }}] !== 'string') return;
  emit([doc[{{ origin_field|tojson }}], doc.state], 1);
}
