function (doc, req) {
  // Pause or resume a queue: {queue: path, paused: true|false}, called on
  // this design document itself (POST _update/pause/_design/queshot), so
  // only database and server admins may. The pause is kept in this document
  // because claim and validate_doc_update can see nothing else.
  var job = require('lib/job');
  if (!doc || doc._id !== this._id) {
    return job.reply(400, 'bad_request', 'pause is called on the design document itself: _update/pause/' + this._id);
  }
  var b = job.body(req);
  var path = job.queuePath(b.queue);
  if (!path) return job.reply(400, 'bad_request', "pause needs 'queue': a name or a path of names");
  if (typeof b.paused !== 'boolean') return job.reply(400, 'bad_request', "pause needs 'paused': true or false");
  var by = req.userCtx && typeof req.userCtx.name === 'string' ? req.userCtx.name : null;
  var answer = { ok: true, queue: path, paused: b.paused };
  if (!job.setPaused(doc, path, b.paused, job.now(), by)) return [null, { json: answer }];
  return [doc, { json: answer }];
}
