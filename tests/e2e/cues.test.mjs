// Cue carriage end to end in Chromium: the gateway runs with the commerce overlay (API token from the
// environment, store in a temp folder), ffmpeg publishes, and two viewers in turn play the demo page
// with hls.js and the player SDK, one reading the emsg carriage only (ID3 in the video and audio
// parts), the other the EXT-X-DATERANGE carriage only. Cues posted through the cue API (anchored "now" and
// "next keyframe") must fire in each viewer once, from its carriage, on the frame of their media time
// (≤ 40 ms), and the two carriages must name the same moment; a cancelled cue never fires. Prints,
// per viewer and cue, the placement error (frame on screen when it fired − intended media time).

import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  Cleanup,
  LiveStream,
  launchBrowser,
  makeTempDir,
  readStats,
  repoRoot,
  shutdownAll,
  waitForPlaying,
} from './helpers.mjs';

const STREAM = 'cues';
const TOKEN = 'e2e-cue-token-0123456789';
const CHECKER = path.join(repoRoot, 'fixtures', 'golden', 'playlist', 'check_m3u8.py');
const MAX_ERROR_S = 0.04; // the goal: within one frame, ≤ 40 ms

after(shutdownAll);

test('cues posted to the API fire once, on their frame, from each carriage alone', { timeout: 180_000 }, async () => {
  const cleanup = new Cleanup();
  const live = new LiveStream(STREAM);
  const { check } = live;
  const viewers = [];
  try {
    const dir = makeTempDir('cues');
    const config = path.join(dir, 'dropline.toml');
    writeFileSync(config, `[storage]\ndata_dir = ${JSON.stringify(path.join(dir, 'data'))}\n\n[streams.${STREAM}]\n`);
    await live.start(cleanup, {
      extraArgs: ['--config', config],
      env: { [`DROPLINE_STREAM_${STREAM.toUpperCase()}_API_TOKEN`]: TOKEN },
    });
    const { httpUrl } = live.gateway;

    const api = async (method, suffix = '', body = undefined) => {
      const res = await fetch(`${httpUrl}/api/v1/streams/${STREAM}/cues${suffix}`, {
        method,
        headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' },
        body: body === undefined ? undefined : JSON.stringify(body),
      });
      return { status: res.status, json: await res.json().catch(() => null) };
    };

    // One viewer per carriage, each reading that carriage only, one after the other: two Chromiums
    // decoding at once on a small machine starve each other's main thread, and a starved page runs
    // its frame callbacks, so its cues, late. (A hidden second tab is no way round: it gets no
    // frame callbacks at all and 1 s timers.)
    const ms = (s) => `${(s * 1000).toFixed(1)} ms`;
    const ids = [];
    for (const carriage of ['emsg', 'daterange']) {
      const viewer = await launchBrowser();
      viewers.push(viewer);
      cleanup.add(() => viewer.close());
      const { page } = viewer;
      await page.goto(`${httpUrl}/?stream=${STREAM}&carriage=${carriage}`, { waitUntil: 'load', timeout: 30_000 });
      await waitForPlaying(page, { timeoutMs: 30_000, check });
      const sdkLoaded = await page.evaluate(() => typeof window.droplineOverlay?.addEventListener === 'function');
      assert.ok(sdkLoaded, `the page did not attach the SDK; console:\n${viewer.console.join('\n')}`);
      await sleep(2_000); // let hls.js settle on its target latency
      // hls.js's own view of the emsg carriage, independent of the SDK (the media time, pts, of each
      // ID3 sample naming one of our cues, per fragment type: main = video, audio; and how far ahead
      // of playback it was parsed), and where the cue's START-DATE maps on the media timeline when
      // it fires (both carriages must name the same moment).
      await page.evaluate(async () => {
        const { mediaTimeOfDate } = await import('/sdk/dropline-overlay.mjs');
        window.emsgSeen = [];
        window.startDateAt = {};
        const overlay = window.droplineOverlay;
        overlay.hls.on(window.Hls.Events.FRAG_PARSING_METADATA, (_e, data) => {
          for (const s of data.samples ?? []) {
            const text = new TextDecoder().decode(s.data);
            const m = /"id":"([A-Za-z0-9_.-]+)"/.exec(text);
            if (m) {
              const ahead = s.pts - window.droplineOverlay.video.currentTime;
              window.emsgSeen.push({ id: m[1], pts: s.pts, type: data.frag?.type, ahead });
            }
          }
        });
        overlay.addEventListener('cue', (e) => {
          const { hls, anchors } = window.droplineOverlay;
          window.startDateAt[e.detail.id] = mediaTimeOfDate(hls.latestLevelDetails, Date.parse(e.detail.start), anchors);
        });
      });

      // A cue far enough ahead to cancel safely, then cancelled: it must never fire.
      const cancelled = `later-${carriage}`;
      const later = await api('POST', '', {
        id: cancelled,
        kind: 'custom',
        payload: {},
        anchor: { type: 'wall-clock', at: new Date(Date.now() + 4_000).toISOString() },
      });
      assert.equal(later.status, 201, JSON.stringify(later.json));
      assert.equal((await api('DELETE', `/${cancelled}`)).status, 200);

      const posted = [
        { id: `card-${carriage}`, kind: 'product-card', payload: { title: 'Tee 1', price: '29 EUR' }, anchor: { type: 'now' } },
        { id: `stage-${carriage}`, kind: 'stock-stage', payload: { label: 'under 50' }, anchor: { type: 'now' } },
        { id: `kf-${carriage}`, kind: 'custom', payload: { n: 1 }, anchor: { type: 'next-keyframe' } },
      ];
      const accepted = {};
      for (const cue of posted) {
        const r = await api('POST', '', cue);
        assert.equal(r.status, 201, JSON.stringify(r.json));
        accepted[cue.id] = Date.now();
        await sleep(1_500);
      }
      const round = posted.map((c) => c.id);
      ids.push(...round);

      const deadline = Date.now() + 30_000;
      let fired = await page.evaluate(() => window.droplineCues.slice());
      while (Date.now() < deadline && !round.every((id) => fired.some((c) => c.id === id))) {
        check();
        await sleep(250);
        fired = await page.evaluate(() => window.droplineCues.slice());
      }
      await sleep(6_000); // past the cancelled cue's time; anything firing twice has had time to
      fired = await page.evaluate(() => window.droplineCues.slice());
      const emsgSeen = await page.evaluate(() => window.emsgSeen.slice());
      const startDateAt = await page.evaluate(() => ({ ...window.startDateAt }));
      for (const c of fired) {
        const by = emsgSeen
          .filter((e) => e.id === c.id)
          .map((e) => `${e.type} ${ms(e.pts - c.mediaTime)} parsed ${e.ahead.toFixed(2)} s ahead`)
          .join(', ');
        console.log(
          `cues e2e [${carriage} viewer]: ${c.id} via ${c.carriage}: intended ${c.mediaTime.toFixed(3)} s, ` +
            `fired on frame ${c.firedAt.toFixed(3)} s (placement error ${ms(c.firedAt - c.mediaTime)})` +
            `${c.late ? ' LATE' : ''}; API accept → event ${c.id in accepted ? c.wallMs - accepted[c.id] : '?'} ms; ` +
            `emsg seen by hls.js: ` +
            `${by || 'none'}; START-DATE maps to ${ms(startDateAt[c.id] - c.mediaTime)} from it`,
        );
      }
      const stats = await readStats(page);
      if (stats.stallLog?.length) console.log(`cues e2e [${carriage} viewer]: stalls ${JSON.stringify(stats.stallLog)}`);
      assert.equal(stats.fatalCount, 0, JSON.stringify(stats.errors));

      for (const id of round) {
        const types = new Set(emsgSeen.filter((e) => e.id === id).map((e) => e.type));
        assert.ok(types.has('main'), `${id}: no emsg parsed from a video part`);
        // This carriage alone: every cue once, from it, on the frame of its media time.
        const got = fired.filter((c) => c.id === id);
        assert.equal(got.length, 1, `${carriage} viewer: ${id} must fire exactly once: ${JSON.stringify(fired)}`);
        const [c] = got;
        assert.equal(c.carriage, carriage);
        assert.ok(!c.late, `${carriage} viewer: ${id} fired late: ${JSON.stringify(c)}`);
        const error = c.firedAt - c.mediaTime;
        assert.ok(Math.abs(error) <= MAX_ERROR_S, `${carriage} viewer: ${id} fired ${ms(error)} from its media time`);
        // Both carriages name the same moment: the cue's time is its START-DATE's on the media timeline.
        const apart = startDateAt[id] - c.mediaTime;
        assert.ok(Math.abs(apart) <= MAX_ERROR_S, `${id}: cue time and START-DATE ${ms(apart)} apart`);
      }
      assert.ok(!fired.some((c) => c.id === cancelled), `${carriage} viewer: a cancelled cue never fires`);
      const pageErrors = viewer.console.filter((l) => l.startsWith('[pageerror]'));
      assert.deepEqual(pageErrors, []);
      await viewer.close();
    }
    for (const id of ids) {
      const { status, json } = await api('GET', `/${id}`);
      assert.equal(status, 200);
      assert.equal(json.aired, true, `${id}: ${JSON.stringify(json)}`);
    }
    // Both media playlists now carry the cues' EXT-X-DATERANGE lines, identical, and pass the
    // independent parser (ID and START-DATE present, IDs unique, PROGRAM-DATE-TIME present).
    const files = [];
    const lines = {};
    for (const rendition of ['main', 'audio']) {
      const text = await (await fetch(`${httpUrl}/${STREAM}/${rendition}/playlist.m3u8`)).text();
      const file = path.join(dir, `${rendition}.m3u8`);
      writeFileSync(file, text);
      files.push(file);
      lines[rendition] = text.split('\n').filter((l) => l.startsWith('#EXT-X-DATERANGE:'));
    }
    console.log(`cues e2e: DATERANGE lines in the window: ${lines.main.length}`);
    assert.deepEqual(lines.audio, lines.main, 'the same EXT-X-DATERANGE lines in both renditions');
    assert.ok(!lines.main.some((l) => l.includes('"later-')), 'no DATERANGE for a cancelled cue');
    const py = spawnSync('python3', [CHECKER, '--live', ...files], { encoding: 'utf-8', timeout: 60_000 });
    assert.equal(py.status, 0, `check_m3u8.py --live:\n${py.stdout}\n${py.stderr}`);
  } catch (e) {
    for (const b of viewers) {
      const stats = await readStats(b.page).catch(() => null);
      if (stats) console.error(`player errors: ${JSON.stringify(stats.errors)}`);
      console.error(b.describe());
    }
    console.error(live.describe());
    throw e;
  } finally {
    await cleanup.run();
  }
});
