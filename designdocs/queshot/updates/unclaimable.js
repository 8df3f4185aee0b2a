function (doc, req) {
  // Fails a waiting job that no worker can claim as it is stored:
  // {worker_id, reason} (see lib/job's markUnclaimable). The answer never
  // echoes the document: it may be what could not be read.
  var job = require('lib/job');
  var b = job.body(req);
  if (!doc) return job.reply(404, 'not_found', 'no such job');
  if (!job.isJob(doc)) return job.reply(400, 'bad_request', 'not a queshot job');
  if (typeof b.worker_id !== 'string' || !b.worker_id) {
    return job.reply(400, 'bad_request', 'unclaimable needs a worker_id');
  }
  if (doc.state !== 'inactive') {
    return job.reply(409, 'not_waiting', 'job is ' + job.truncated(JSON.stringify(doc.state), 100) + ', not waiting');
  }
  job.markUnclaimable(doc, b.worker_id, b.reason, job.now());
  return [doc, { json: { ok: true, state: doc.state } }];
}
