// Cue carriage end to end in Chromium: the gateway runs with the commerce overlay (API token from the
// environment, store in a temp folder), ffmpeg publishes, and two viewers play the demo page with
// hls.js and the player SDK, one reading the emsg carriage only (ID3 in the video and audio parts),
// the other the EXT-X-DATERANGE carriage only. Cues posted through the cue API (anchored "now" and
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
  launchBrowser,
  makeTempDir,
  readStats,
  repoRoot,
  shutdownAll,
  startGateway,
  startPublisher,
  waitForPlaying,
  waitForStream,
} from './helpers.mjs';

const STREAM = 'cues';
const TOKEN = 'e2e-cue-token-0123456789';
const CHECKER = path.join(repoRoot, 'fixtures', 'golden', 'playlist', 'check_m3u8.py');
const MAX_ERROR_S = 0.04; // the goal: within one frame, ≤ 40 ms

after(shutdownAll);

test('cues posted to the API fire once, on their frame, from each carriage alone', { timeout: 180_000 }, async () => {
  const cleanup = new Cleanup();
  let gateway;
  let publisher;
  let browser;
  let second;
  const check = () => {
    gateway?.check();
    publisher?.check();
  };
  try {
    const dir = makeTempDir('cues');
    const config = path.join(dir, 'dropline.toml');
    writeFileSync(config, `[storage]\ndata_dir = ${JSON.stringify(path.join(dir, 'data'))}\n\n[streams.${STREAM}]\n`);
    gateway = await startGateway({
      extraArgs: ['--config', config],
      env: { [`DROPLINE_STREAM_${STREAM.toUpperCase()}_API_TOKEN`]: TOKEN },
    });
    cleanup.add(() => gateway.stop());
    publisher = startPublisher({ srt: gateway.srt, name: STREAM, latencyMs: 120 });
    cleanup.add(() => publisher.stop());
    await waitForStream(gateway.httpUrl, STREAM, { timeoutMs: 30_000, check });

    const api = async (method, suffix = '', body = undefined) => {
      const res = await fetch(`${gateway.httpUrl}/api/v1/streams/${STREAM}/cues${suffix}`, {
        method,
        headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' },
        body: body === undefined ? undefined : JSON.stringify(body),
      });
      return { status: res.status, json: await res.json().catch(() => null) };
    };

    // Two viewers, each reading one carriage only: every cue must fire from each alone. One browser
    // each: a second tab would be hidden, and a hidden page gets no video frame callbacks and
    // throttled timers (cues fire up to a second late there, as they would for a real viewer).
    browser = await launchBrowser();
    cleanup.add(() => browser.close());
    second = await launchBrowser();
    cleanup.add(() => second.close());
    const pages = { emsg: browser.page, daterange: second.page };
    for (const [carriage, page] of Object.entries(pages)) {
      await page.goto(`${gateway.httpUrl}/?stream=${STREAM}&carriage=${carriage}`, { waitUntil: 'load', timeout: 30_000 });
    }
    for (const page of Object.values(pages)) {
      await waitForPlaying(page, { timeoutMs: 30_000, check });
      const sdkLoaded = await page.evaluate(() => typeof window.droplineOverlay?.addEventListener === 'function');
      assert.ok(sdkLoaded, 'the page did not attach the SDK');
    }
    await sleep(2_000); // let hls.js settle on its target latency
    // In the emsg viewer: hls.js's own view of the emsg carriage, independent of the SDK (the media
    // time, pts, of each ID3 sample naming one of our cues, per fragment type: main = video, audio;
    // and how far ahead of playback it was parsed),
    // and where the cue's START-DATE maps on the media timeline when it fires (both carriages must
    // name the same moment).
    await pages.emsg.evaluate(async () => {
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
    const later = await api('POST', '', {
      id: 'later-1',
      kind: 'custom',
      payload: {},
      anchor: { type: 'wall-clock', at: new Date(Date.now() + 4_000).toISOString() },
    });
    assert.equal(later.status, 201, JSON.stringify(later.json));
    assert.equal((await api('DELETE', '/later-1')).status, 200);

    const posted = [
      { id: 'card-1', kind: 'product-card', payload: { title: 'Tee 1', price: '29 EUR' }, anchor: { type: 'now' } },
      { id: 'stage-1', kind: 'stock-stage', payload: { label: 'under 50' }, anchor: { type: 'now' } },
      { id: 'kf-1', kind: 'custom', payload: { n: 1 }, anchor: { type: 'next-keyframe' } },
    ];
    const accepted = {};
    for (const cue of posted) {
      const r = await api('POST', '', cue);
      assert.equal(r.status, 201, JSON.stringify(r.json));
      accepted[cue.id] = { wallMs: Date.now(), answer: r.json };
      await sleep(1_500);
    }

    const ids = posted.map((c) => c.id);
    const firedIn = async () => {
      const out = {};
      for (const [carriage, page] of Object.entries(pages)) out[carriage] = await page.evaluate(() => window.droplineCues.slice());
      return out;
    };
    const deadline = Date.now() + 30_000;
    let fired = await firedIn();
    while (Date.now() < deadline) {
      check();
      if (Object.values(fired).every((list) => ids.every((id) => list.some((c) => c.id === id)))) break;
      await sleep(250);
      fired = await firedIn();
    }
    await sleep(6_000); // past the cancelled cue's time; anything firing twice has had time to
    fired = await firedIn();

    const ms = (s) => `${(s * 1000).toFixed(1)} ms`;
    for (const [carriage, list] of Object.entries(fired)) {
      for (const c of list) {
        const a = accepted[c.id];
        console.log(
          `cues e2e [${carriage} viewer]: ${c.id} ${c.kind} via ${c.carriage}: intended ${c.mediaTime.toFixed(3)} s, ` +
            `fired on frame ${c.firedAt.toFixed(3)} s (placement error ${ms(c.firedAt - c.mediaTime)})` +
            `${c.late ? ' LATE' : ''}; API accept → event ${a ? c.wallMs - a.wallMs : '?'} ms`,
        );
      }
    }
    const emsgSeen = await pages.emsg.evaluate(() => window.emsgSeen.slice());
    const startDateAt = await pages.emsg.evaluate(() => ({ ...window.startDateAt }));
    for (const c of fired.emsg) {
      const by = emsgSeen
        .filter((e) => e.id === c.id)
        .map((e) => `${e.type} ${e.pts.toFixed(3)} s (${ms(e.pts - c.mediaTime)}, parsed ${e.ahead.toFixed(2)} s ahead)`)
        .join(', ');
      console.log(`cues e2e: ${c.id} emsg seen by hls.js: ${by || 'none'}; START-DATE maps to ${ms(startDateAt[c.id] - c.mediaTime)} from it`);
    }
    for (const page of Object.values(pages)) {
      const stats = await readStats(page);
      if (stats.stallLog?.length) console.log(`cues e2e: stalls ${JSON.stringify(stats.stallLog)}`);
      assert.equal(stats.fatalCount, 0, JSON.stringify(stats.errors));
    }

    for (const id of ids) {
      const types = new Set(emsgSeen.filter((e) => e.id === id).map((e) => e.type));
      assert.ok(types.has('main'), `${id}: no emsg parsed from a video part`);
    }
    // Each carriage alone: every cue once, from that carriage, on the frame of its media time.
    for (const [carriage, list] of Object.entries(fired)) {
      for (const id of ids) {
        const got = list.filter((c) => c.id === id);
        assert.equal(got.length, 1, `${carriage} viewer: ${id} must fire exactly once: ${JSON.stringify(list)}`);
        const [c] = got;
        assert.equal(c.carriage, carriage);
        assert.ok(!c.late, `${carriage} viewer: ${id} fired late: ${JSON.stringify(c)}`);
        const error = c.firedAt - c.mediaTime;
        assert.ok(Math.abs(error) <= MAX_ERROR_S, `${carriage} viewer: ${id} fired ${ms(error)} from its media time`);
      }
      assert.ok(!list.some((c) => c.id === 'later-1'), `${carriage} viewer: a cancelled cue never fires`);
    }
    // Both carriages name the same moment: the emsg time is the START-DATE's on the media timeline.
    for (const c of fired.emsg) {
      const apart = startDateAt[c.id] - c.mediaTime;
      assert.ok(Math.abs(apart) <= MAX_ERROR_S, `${c.id}: emsg and START-DATE ${ms(apart)} apart`);
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
      const text = await (await fetch(`${gateway.httpUrl}/${STREAM}/${rendition}/playlist.m3u8`)).text();
      const file = path.join(dir, `${rendition}.m3u8`);
      writeFileSync(file, text);
      files.push(file);
      lines[rendition] = text.split('\n').filter((l) => l.startsWith('#EXT-X-DATERANGE:'));
    }
    console.log(`cues e2e: DATERANGE lines in the window: ${lines.main.length}`);
    assert.deepEqual(lines.audio, lines.main, 'the same EXT-X-DATERANGE lines in both renditions');
    assert.ok(!lines.main.some((l) => l.includes('"later-1"')), 'no DATERANGE for the cancelled cue');
    const py = spawnSync('python3', [CHECKER, '--live', ...files], { encoding: 'utf-8', timeout: 60_000 });
    assert.equal(py.status, 0, `check_m3u8.py --live:\n${py.stdout}\n${py.stderr}`);

    const pageErrors = [browser, second].flatMap((b) => b.console.filter((l) => l.startsWith('[pageerror]')));
    assert.deepEqual(pageErrors, []);
  } catch (e) {
    for (const b of [browser, second]) {
      if (!b) continue;
      const stats = await readStats(b.page).catch(() => null);
      if (stats) console.error(`player errors: ${JSON.stringify(stats.errors)}`);
      console.error(b.describe());
    }
    if (publisher) console.error(publisher.describe());
    if (gateway) console.error(`gateway:\n  ${gateway.describe()}`);
    throw e;
  } finally {
    await cleanup.run();
  }
});
