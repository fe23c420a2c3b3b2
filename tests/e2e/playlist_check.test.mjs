// Live playlists through an independent parser: while ffmpeg publishes, fetch every media playlist
// of the multivariant playlist (the video variant and the audio rendition) plainly and with
// blocking reload (_HLS_msn/_HLS_part for the next part), save every answer and run
// `check_m3u8.py --live` (Python `m3u8` package, no code shared with the Rust writer) over them.
// Across successive fetches also checks: EXT-X-MEDIA-SEQUENCE never decreases, a published segment
// keeps its URI and duration, a published part keeps its duration, the preload hint becomes the
// next EXT-X-PART, and every playlist carries an EXT-X-RENDITION-REPORT for every other rendition,
// at most one segment away from its own live end (all renditions are cut on the same MSNs).

import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  Cleanup,
  LiveStream,
  makeTempDir,
  repoRoot,
  shutdownAll,
} from './helpers.mjs';

const STREAM = 'plcheck';
const PLAIN_FETCHES = 6;
const WINDOW_SEGMENTS = 3;
const BLOCKING_CHAIN = 24; // consecutive blocking reloads, each for the hinted part (crosses segments)
const CHECKER = path.join(repoRoot, 'fixtures', 'golden', 'playlist', 'check_m3u8.py');

after(shutdownAll);

/** Just enough of a media playlist for the cross-fetch checks (the Python checker does the rest). */
function parseMedia(text) {
  const out = { msn: null, partTarget: null, segments: [], parts: [], hint: null, openParts: 0, reports: [] };
  let pendingDuration = null;
  let openParts = [];
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (!line) continue;
    if (line.startsWith('#EXT-X-MEDIA-SEQUENCE:')) out.msn = Number(line.slice(22));
    else if (line.startsWith('#EXT-X-PART-INF:')) out.partTarget = Number(/PART-TARGET=([\d.]+)/.exec(line)[1]);
    else if (line.startsWith('#EXTINF:')) pendingDuration = Number(line.slice(8).split(',')[0]);
    else if (line.startsWith('#EXT-X-PART:')) {
      const uri = /URI="([^"]+)"/.exec(line)[1];
      const duration = Number(/DURATION=([\d.]+)/.exec(line)[1]);
      const part = { uri, duration };
      out.parts.push(part);
      openParts.push(part);
    } else if (line.startsWith('#EXT-X-PRELOAD-HINT:')) out.hint = /URI="([^"]+)"/.exec(line)[1];
    else if (line.startsWith('#EXT-X-RENDITION-REPORT:')) {
      out.reports.push({
        uri: /URI="([^"]+)"/.exec(line)[1],
        lastMsn: Number(/LAST-MSN=(\d+)/.exec(line)?.[1]),
        lastPart: Number(/LAST-PART=(\d+)/.exec(line)?.[1]),
      });
    }
    else if (!line.startsWith('#')) {
      out.segments.push({ msn: out.msn + out.segments.length, uri: line, duration: pendingDuration });
      pendingDuration = null;
      openParts = [];
    }
  }
  out.openParts = openParts.length; // parts of the segment in progress
  out.openMsn = out.msn + out.segments.length;
  return out;
}

async function get(url, timeoutMs = 10_000) {
  const ctrl = new AbortController();
  const timer = setTimeout(() => ctrl.abort(), timeoutMs);
  const t = Date.now();
  try {
    const res = await fetch(url, { signal: ctrl.signal, cache: 'no-store' });
    const text = await res.text();
    return { status: res.status, text, ms: Date.now() - t };
  } finally {
    clearTimeout(timer);
  }
}

test('live media playlists pass an independent LL-HLS parser, consistently across reloads', { timeout: 120_000 }, async () => {
  const cleanup = new Cleanup();
  const live = new LiveStream(STREAM);
  const fetchLog = [];
  try {
    // A short window, so the media sequence number advances during the test.
    const multivariant = await live.start(cleanup, {
      env: { DROPLINE_HLS_WINDOW_SEGMENTS: String(WINDOW_SEGMENTS) },
    });
    const base = `${live.gateway.httpUrl}/${STREAM}/index.m3u8`;
    const variant = multivariant.split('\n').find((l) => l.trim() && !l.startsWith('#'));
    assert.ok(variant, `multivariant playlist lists no variant:\n${multivariant}`);
    const audio = multivariant
      .split('\n')
      .filter((l) => l.startsWith('#EXT-X-MEDIA:TYPE=AUDIO'))
      .map((l) => /URI="([^"]+)"/.exec(l)[1]);
    assert.equal(audio.length, 1, `the test source has audio: one audio rendition expected:\n${multivariant}`);
    const mediaUrls = [variant.trim(), ...audio].map((u) => new URL(u, base).href);
    for (const mediaUrl of mediaUrls) {
      await checkMediaPlaylist(live, mediaUrl, mediaUrls, fetchLog);
    }
  } catch (e) {
    for (const f of fetchLog) console.error(f);
    console.error(live.describe());
    throw e;
  } finally {
    await cleanup.run();
  }
});

/** Fetches one media playlist plainly and blocking, checks it across reloads and with Python m3u8. */
async function checkMediaPlaylist(live, mediaUrl, mediaUrls, fetchLog) {
  const { check } = live;
  const name = mediaUrl.split('/').at(-2);
  const dir = makeTempDir(`playlists-${name}`);
  const files = [];
  const fetches = []; // {kind, url, pl, ms}
  const save = (kind, url, res) => {
    assert.equal(res.status, 200, `GET ${url}: HTTP ${res.status}\n${res.text.slice(0, 500)}`);
    const file = path.join(dir, `${String(files.length).padStart(3, '0')}-${kind}.m3u8`);
    writeFileSync(file, res.text);
    files.push(file);
    const pl = parseMedia(res.text);
    fetches.push({ kind, url, pl, ms: res.ms, file });
    fetchLog.push(
      `${name}/${path.basename(file)} ${res.ms} ms ${url.replace(/^.*\?/, '?')} -> msn=${pl.msn} open=${pl.openMsn}/${pl.openParts} ` +
        `last=${pl.parts.at(-1)?.uri} hint=${pl.hint}`,
    );
    return pl;
  };

  // Wait until a complete segment is listed, so the window has some history.
  let pl;
  for (let i = 0; ; i += 1) {
    check();
    pl = parseMedia((await get(mediaUrl)).text);
    if (pl.segments.length >= 1) break;
    assert.ok(i < 60, 'no complete segment within 15 s');
    await sleep(250);
  }

  // Plain reloads, each followed by a blocking reload for the part after the last listed one.
  for (let i = 0; i < PLAIN_FETCHES; i += 1) {
    check();
    const plain = save('plain', mediaUrl, await get(mediaUrl));
    const next = `${mediaUrl}?_HLS_msn=${plain.openMsn}&_HLS_part=${plain.openParts}`;
    const blocked = save('blocking', next, await get(next));
    assert.ok(
      blocked.parts.some((p) => p.uri === plain.hint),
      `blocking reload ${next} must list the hinted part ${plain.hint} (last listed: ${blocked.parts.at(-1)?.uri})`,
    );
    await sleep(300 + i * 150);
  }
  // A chain of blocking reloads, each asking for the part the previous answer hinted.
  let prev = fetches.at(-1).pl;
  const extraParts = []; // parts listed after the requested one in each chained answer
  for (let i = 0; i < BLOCKING_CHAIN; i += 1) {
    check();
    const next = `${mediaUrl}?_HLS_msn=${prev.openMsn}&_HLS_part=${prev.openParts}`;
    const blocked = save('chain', next, await get(next));
    const uris = blocked.parts.map((p) => p.uri);
    const at = uris.indexOf(prev.hint);
    assert.ok(at >= 0, `${next}: must list the hinted part ${prev.hint} (last listed: ${uris.at(-1)})`);
    // A blocking reload may answer with a later playlist, but the hint must have become the
    // EXT-X-PART right after the previous answer's last part.
    assert.equal(uris[at - 1], prev.parts.at(-1).uri, `${next}: part before the hinted ${prev.hint}`);
    extraParts.push(uris.length - 1 - at);
    prev = blocked;
  }
  // Blocking on the next whole segment (no _HLS_part).
  const segNext = `${mediaUrl}?_HLS_msn=${prev.openMsn}`;
  const segBlocked = save('segment', segNext, await get(segNext));
  assert.ok(
    segBlocked.segments.some((s) => s.msn === prev.openMsn),
    `${segNext} must list segment ${prev.openMsn} complete`,
  );

  // Cross-fetch consistency.
  const segByMsn = new Map();
  const partDur = new Map();
  let lastMsn = -1;
  let lastPartSeq = -1;
  for (const f of fetches) {
    const where = path.basename(f.file);
    assert.ok(f.pl.msn >= lastMsn, `${where}: EXT-X-MEDIA-SEQUENCE went back from ${lastMsn} to ${f.pl.msn}`);
    lastMsn = f.pl.msn;
    for (const s of f.pl.segments) {
      const seen = segByMsn.get(s.msn);
      if (seen) {
        assert.deepEqual(s, seen, `${where}: segment ${s.msn} changed since first published`);
      } else {
        segByMsn.set(s.msn, s);
      }
    }
    for (const p of f.pl.parts) {
      const seen = partDur.get(p.uri);
      if (seen !== undefined) assert.equal(p.duration, seen, `${where}: duration of ${p.uri} changed`);
      else partDur.set(p.uri, p.duration);
    }
    const seq = Number(/(\d+)/.exec(f.pl.parts.at(-1).uri)[1]);
    assert.ok(seq >= lastPartSeq, `${where}: last part went back from part${lastPartSeq} to part${seq}`);
    lastPartSeq = seq;
  }
  // Each hint is the next EXT-X-PART of every later playlist that still lists that region.
  for (let i = 0; i + 1 < fetches.length; i += 1) {
    const { hint, parts } = fetches[i].pl;
    const later = fetches[i + 1].pl.parts.map((p) => p.uri);
    const at = later.indexOf(parts.at(-1).uri);
    if (at >= 0 && at + 1 < later.length) {
      assert.equal(later[at + 1], hint, `${path.basename(fetches[i + 1].file)}: part after ${parts.at(-1).uri}`);
    } else if (at >= 0) {
      assert.equal(fetches[i + 1].pl.hint, hint, `${path.basename(fetches[i + 1].file)}: hint unchanged`);
    }
  }

  assert.ok(lastMsn > fetches[0].pl.msn, `EXT-X-MEDIA-SEQUENCE never advanced (window ${WINDOW_SEGMENTS} segments)`);

  // Rendition reports: one per other media playlist, near this one's live end.
  const others = mediaUrls.filter((u) => u !== mediaUrl).sort();
  for (const f of fetches) {
    const where = `${name}/${path.basename(f.file)}`;
    const reported = f.pl.reports.map((r) => new URL(r.uri, mediaUrl).href).sort();
    assert.deepEqual(reported, others, `${where}: EXT-X-RENDITION-REPORT for every other rendition`);
    for (const r of f.pl.reports) {
      assert.ok(Number.isInteger(r.lastMsn) && Number.isInteger(r.lastPart), `${where}: ${JSON.stringify(r)}`);
      assert.ok(
        Math.abs(r.lastMsn - f.pl.openMsn) <= 1,
        `${where}: ${r.uri} reports MSN ${r.lastMsn}, this playlist is at ${f.pl.openMsn}`,
      );
    }
  }

  // The independent parser.
  const py = spawnSync('python3', [CHECKER, '--live', ...files], { encoding: 'utf-8', timeout: 60_000 });
  const tail = (py.stdout || '').trim().split('\n').at(-1);
  const blockMs = fetches.filter((f) => f.kind === 'chain').map((f) => f.ms);
  const segs = new Set(fetches.flatMap((f) => f.pl.segments.map((s) => s.msn)));
  console.log(
    `playlist check ${name}: ${files.length} playlists (${PLAIN_FETCHES} plain, ${PLAIN_FETCHES + BLOCKING_CHAIN + 1} blocking), ` +
      `MSN ${fetches[0].pl.msn}..${lastMsn}, ${segs.size} segments, parts up to part${lastPartSeq}, ` +
      `PART-TARGET ${fetches[0].pl.partTarget} s, chained blocking reload ${Math.min(...blockMs)}..${Math.max(...blockMs)} ms ` +
      `(parts beyond the requested one: ${extraParts.join(',')}); ` +
      `check_m3u8.py --live: ${tail}`,
  );
  assert.equal(
    py.status,
    0,
    `check_m3u8.py --live failed (status ${py.status}, ${py.error?.message ?? ''}):\n${py.stdout}\n${py.stderr}`,
  );
  assert.equal(tail, `${files.length} passed, 0 failed`);
}
