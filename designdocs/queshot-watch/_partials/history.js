// The counts of a worker's history document (lib/history.js of _design/queshot):
// each(path, state, minute, n) for every count above 0, `minute` the epoch ms
// of the minute's start. Included after model.js in the history maps.
function eachHistoryCount(doc, each) {
  var STATES = {{ history_states|tojson }};
  if (!isObject(doc) || doc.type !== {{ history_type|tojson }} || !isNumber(doc.hour) || !isObject(doc.counts)) return;
  for (var minute in doc.counts) {
    var queues = doc.counts[minute];
    if (!isObject(queues)) continue;
    for (var queue in queues) {
      var path = queuePath(queue);
      if (!path || !Array.isArray(queues[queue])) continue;
      for (var i = 0; i < STATES.length; i++) {
        var n = queues[queue][i];
        if (isNumber(n) && n > 0) each(path, STATES[i], doc.hour + Number(minute) * 60000, n);
      }
    }
  }
}
