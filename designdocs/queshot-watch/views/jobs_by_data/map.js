function (doc) {
  // Jobs by a top-level field of their data: [field, value, stored state] ->
  // summary, for the dashboard's search ("to=ada@example.org"), which a
  // state narrows on the server. Strings, numbers and booleans only; long
  // strings are left out of the index.
{% include '_partials/model.js' %}
{% include '_partials/listing.js' %}
  if (!isJob(doc) || !isObject(doc.data)) return;
  for (var field in doc.data) {
    var value = doc.data[field];
    var kind = typeof value;
    if ((kind === 'string' && value.length <= 200) || kind === 'number' || kind === 'boolean') {
      emit([field, value, doc.state === undefined ? null : doc.state], summary(doc));
    }
  }
}
