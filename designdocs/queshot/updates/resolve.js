function (doc, req) {
  // A job this one waits for has finished: {dependency: id, state, result?}
  // (see lib/job's resolve). Called by the worker that finished it, by a
  // worker's reconciliation, or by the producer that finds it finished.
  var job = require('lib/job');
  var b = job.body(req);
  if (!doc) return job.reply(404, 'not_found', 'no such job');
  if (!job.isJob(doc)) return job.reply(400, 'bad_request', 'not a queshot job');
  if (typeof b.dependency !== 'string' || job.FINISHED_STATES.indexOf(b.state) < 0) {
    return job.reply(400, 'bad_request', "resolve needs 'dependency' (a job id) and its finished 'state'");
  }
  if (!job.resolve(doc, b.dependency, b.state, b.result, job.now())) {
    return [null, { json: { ok: true, state: doc.state, changed: false } }];
  }
  return [doc, { json: { ok: true, state: doc.state, changed: true } }];
}
