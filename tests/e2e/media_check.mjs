// Independent checks of a packaged stream: collect every segment the media playlist lists while
// the stream runs, then prove with ffmpeg/ffprobe that the media decodes without an error and
// has no hole (segments back to back, frame count = duration × frame rate).

import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import path from 'node:path';

/** Parses the segments of a media playlist: [{ msn, uri, duration, pdt, discontinuity, gap }]. */
export function parseSegments(text) {
  const lines = text.split('\n').map((l) => l.trim());
  let msn = Number(/#EXT-X-MEDIA-SEQUENCE:(\d+)/.exec(text)?.[1] ?? 0);
  const segs = [];
  let cur = { discontinuity: false, gap: false, pdt: null, duration: null };
  for (const l of lines) {
    if (l === '#EXT-X-DISCONTINUITY') cur.discontinuity = true;
    else if (l === '#EXT-X-GAP') cur.gap = true;
    else if (l.startsWith('#EXT-X-PROGRAM-DATE-TIME:')) cur.pdt = Date.parse(l.slice(25));
    else if (l.startsWith('#EXTINF:')) cur.duration = Number.parseFloat(l.slice(8));
    else if (l && !l.startsWith('#')) {
      segs.push({ msn, uri: l, ...cur });
      msn += 1;
      cur = { discontinuity: false, gap: false, pdt: null, duration: null };
    }
  }
  return segs;
}

/**
 * Polls `playlistUrl` and downloads every new segment (and the init segment) until `stop()` is
 * called; playlists are also scanned for EXT-X-DISCONTINUITY / EXT-X-GAP anywhere in them.
 */
export function collectSegments(playlistUrl, { intervalMs = 1_000 } = {}) {
  const base = new URL('.', playlistUrl);
  const segments = new Map();
  const state = { init: null, mapUri: null, flagged: [], errors: [], running: true };
  const loop = (async () => {
    while (state.running) {
      try {
        const text = await (await fetch(playlistUrl, { cache: 'no-store' })).text();
        for (const tag of ['#EXT-X-DISCONTINUITY', '#EXT-X-GAP']) {
          if (text.split('\n').some((l) => l.trim() === tag)) state.flagged.push(tag);
        }
        const map = /#EXT-X-MAP:URI="([^"]+)"/.exec(text)?.[1];
        if (map && map !== state.mapUri) {
          if (state.mapUri) state.errors.push(`EXT-X-MAP changed from ${state.mapUri} to ${map}`);
          state.mapUri = map;
          state.init = Buffer.from(await (await fetch(new URL(map, base))).arrayBuffer());
        }
        for (const s of parseSegments(text)) {
          if (segments.has(s.msn)) continue;
          const res = await fetch(new URL(s.uri, base));
          if (!res.ok) {
            state.errors.push(`${s.uri}: HTTP ${res.status}`);
            continue;
          }
          segments.set(s.msn, { ...s, body: Buffer.from(await res.arrayBuffer()) });
        }
      } catch (e) {
        state.errors.push(`${e.name}: ${e.message}`);
      }
      await new Promise((r) => setTimeout(r, intervalMs));
    }
  })();
  return {
    async stop() {
      state.running = false;
      await loop;
      return { ...state, segments: [...segments.values()].sort((a, b) => a.msn - b.msn) };
    },
  };
}

/**
 * Checks collected segments; returns a list of problems (empty = good), the video frames decoded,
 * the seconds listed and how many video frames are B-frames. Writes init + segments to
 * DIR/stream.mp4 and decodes it with ffmpeg (`-v error`: any output is a decode error).
 */
export function checkMedia(collected, dir, { fps = 30 } = {}) {
  const problems = [...collected.errors];
  const segs = collected.segments;
  if (collected.flagged.length) problems.push(`playlist carried ${[...new Set(collected.flagged)].join(', ')}`);
  if (!collected.init) problems.push('no init segment');
  if (segs.length < 2) problems.push(`only ${segs.length} segments collected`);
  for (let i = 1; i < segs.length; i++) {
    const [a, b] = [segs[i - 1], segs[i]];
    if (b.msn !== a.msn + 1) problems.push(`segments ${a.msn} → ${b.msn}: a segment is missing`);
    // Back to back: each segment starts where the previous one ended.
    if (a.pdt !== null && b.pdt !== null && Math.abs(b.pdt - a.pdt - a.duration * 1000) > 2) {
      problems.push(`seg ${a.msn} (PDT ${a.pdt}, ${a.duration} s) → seg ${b.msn} (PDT ${b.pdt}): not contiguous`);
    }
  }
  if (!collected.init || segs.length === 0) return { problems, frames: 0, seconds: 0, bFrames: 0 };
  const file = path.join(dir, 'stream.mp4');
  writeFileSync(file, Buffer.concat([collected.init, ...segs.map((s) => s.body)]));
  const decode = spawnSync('ffmpeg', ['-nostdin', '-v', 'error', '-i', file, '-f', 'null', '-'], {
    encoding: 'utf8',
  });
  if (decode.status !== 0 || decode.stderr.trim()) {
    problems.push(`ffmpeg decode (exit ${decode.status}): ${decode.stderr.trim().split('\n').slice(0, 10).join(' | ')}`);
  }
  const probe = spawnSync(
    'ffprobe',
    ['-v', 'error', '-select_streams', 'v:0', '-show_entries', 'frame=pict_type', '-of', 'csv=p=0', file],
    { encoding: 'utf8', maxBuffer: 64 << 20 },
  );
  const types = probe.stdout.split('\n').map((l) => l.trim()).filter(Boolean);
  const frames = types.length;
  const bFrames = types.filter((t) => t === 'B').length;
  const seconds = segs.reduce((sum, s) => sum + s.duration, 0);
  const want = Math.round(seconds * fps);
  // Every frame of every listed second is there: a lost frame would be a hole in the picture.
  if (frames !== want) {
    problems.push(`decoded ${frames} video frames, the segments last ${seconds.toFixed(3)} s = ${want} frames (${file})`);
  }
  return { problems, frames, seconds, bFrames };
}
