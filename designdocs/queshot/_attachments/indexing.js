// "indexing: N of M changes": the views a page reads are built when read
// (queshot-watch's have autoupdate false; queshot's catch up in the
// background), so after a burst of jobs the first read waits while CouchDB
// works through the changes. While a refresh waits that long, the header says
// how far the slowest design document's index is (its `_info` view_index
// update_seq against the database's update_seq, numeric prefixes) rather than
// leaving the page empty or frozen. A server whose `_info` does not say
// (pouchdb-server: "Not implemented.") gets the same line without numbers.
'use strict';

const INDEX_CHECK_AFTER_MS = 1000; // a read slower than this may be waiting for a build
const INDEX_CHECK_EVERY_MS = 500;
const INDEXED_DESIGN_DOCS = [WATCH_PATH, DDOC_PATH];

function seqNumber(seq) {
  const n = parseInt(String(seq), 10);
  return Number.isFinite(n) ? n : null;
}

// {done, total} of the index furthest behind; {done: null} when the server
// does not say; null when every index is up to date.
async function indexProgress() {
  const [db, ...infos] = await Promise.all([request('GET', dbUrl('')),
    ...INDEXED_DESIGN_DOCS.map((path) => request('GET', dbUrl(path + '/_info')))]);
  const total = seqNumber(db.update_seq);
  const told = infos.map((info) => info && info.view_index).filter(isPlainObject);
  if (!told.length || total === null) return { done: null, total };
  const done = Math.min(...told.map((index) => seqNumber(index.update_seq) || 0));
  return done < total ? { done, total } : null;
}

function showIndexing(progress) {
  const line = $('indexing');
  line.hidden = !progress;
  if (!progress) return;
  line.textContent = progress.done === null
    ? 'indexing: the server is building its views (it does not say how far)'
    : 'indexing: ' + progress.done + ' of ' + progress.total + ' changes';
  Object.assign(line.dataset, { done: progress.done === null ? '' : progress.done, total: progress.total });
}

// Watch the indexes while `read` (a promise) is pending past INDEX_CHECK_AFTER_MS.
async function watchIndexing(read) {
  let pending = true;
  read.then(() => { pending = false; }, () => { pending = false; });
  await sleep(INDEX_CHECK_AFTER_MS);
  while (pending) {
    try {
      const progress = await indexProgress();
      if (pending) showIndexing(progress);
    } catch (error) {
      break; // the read itself says what is wrong
    }
    await sleep(INDEX_CHECK_EVERY_MS);
  }
  showIndexing(null);
}
