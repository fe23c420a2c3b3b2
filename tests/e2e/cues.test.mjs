// Cue carriage end to end in Chromium: the gateway runs with the commerce overlay (API token from the
// environment, store in a temp folder), ffmpeg publishes, the demo page plays with hls.js and the
// player SDK. Cues posted through the cue API (anchored "now" and "next keyframe") reach the page in
// the media (emsg ID3, both renditions) and in the playlists (EXT-X-DATERANGE); each fires once.
// Prints, per cue, the carriage that fired it and the media-time placement error (frame on screen when
// it fired − intended media time); a cancelled cue never fires.

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

after(shutdownAll);

test('cues posted to the API fire once in the page, from the gateway carriage', { timeout: 180_000 }, async () => {
  const cleanup = new Cleanup();
  let gateway;
  let publisher;
  let browser;
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

    browser = await launchBrowser();
    cleanup.add(() => browser.close());
    const { page } = browser;
    await page.goto(`${gateway.httpUrl}/?stream=${STREAM}`, { waitUntil: 'load', timeout: 30_000 });
    await waitForPlaying(page, { timeoutMs: 30_000, check });
    const sdkLoaded = await page.evaluate(() => typeof window.droplineOverlay?.addEventListener === 'function');
    assert.ok(sdkLoaded, `the page did not attach the SDK; console:\n${browser.console.join('\n')}`);
    await sleep(2_000); // let hls.js settle on its target latency
    // hls.js's own view of the emsg carriage, independent of the SDK: the media time (pts) of each
    // ID3 sample naming one of our cues, per fragment type (main = video, audio).
    await page.evaluate(() => {
      window.emsgSeen = [];
      const hls = window.droplineOverlay.hls;
      hls.on(window.Hls.Events.FRAG_PARSING_METADATA, (_e, data) => {
        for (const s of data.samples ?? []) {
          const text = new TextDecoder().decode(s.data);
          const m = /"id":"([A-Za-z0-9_.-]+)"/.exec(text);
          if (m) window.emsgSeen.push({ id: m[1], pts: s.pts, type: data.frag?.type });
        }
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
    const deadline = Date.now() + 30_000;
    let fired = [];
    while (Date.now() < deadline) {
      check();
      fired = await page.evaluate(() => window.droplineCues.slice());
      if (ids.every((id) => fired.some((c) => c.id === id))) break;
      await sleep(250);
    }
    await sleep(6_000); // past the cancelled cue's time; anything firing twice has had time to
    fired = await page.evaluate(() => window.droplineCues.slice());
    const stats = await readStats(page);

    const ms = (s) => `${(s * 1000).toFixed(1)} ms`;
    for (const c of fired) {
      const a = accepted[c.id];
      console.log(
        `cues e2e: ${c.id} ${c.kind} via ${c.carriage}: intended ${c.mediaTime.toFixed(3)} s, fired on frame ` +
          `${c.firedAt.toFixed(3)} s (placement error ${ms(c.firedAt - c.mediaTime)})` +
          `${c.late ? ' LATE' : ''}; API accept → event ${a ? c.wallMs - a.wallMs : '?'} ms`,
      );
    }
    // Both carriages of a cue agree: the emsg pts hls.js reports (video and audio parts) against the
    // START-DATE of its DATERANGE mapped through PROGRAM-DATE-TIME (the SDK's intended time when the
    // DATERANGE fired first).
    const emsgSeen = await page.evaluate(() => window.emsgSeen.slice());
    for (const c of fired) {
      const seen = emsgSeen.filter((e) => e.id === c.id);
      const by = seen.map((e) => `${e.type} ${e.pts.toFixed(3)} s (${ms(e.pts - c.mediaTime)})`).join(', ');
      console.log(`cues e2e: ${c.id} emsg seen by hls.js: ${by || 'none'}`);
    }
    if (stats.stallLog?.length) console.log(`cues e2e: stalls ${JSON.stringify(stats.stallLog)}`);
    for (const id of ids) {
      const types = new Set(emsgSeen.filter((e) => e.id === id).map((e) => e.type));
      assert.ok(types.has('main'), `${id}: no emsg parsed from a video part`);
    }
    const byId = (id) => fired.filter((c) => c.id === id);
    for (const id of ids) assert.equal(byId(id).length, 1, `${id} must fire exactly once: ${JSON.stringify(fired)}`);
    assert.equal(byId('later-1').length, 0, 'a cancelled cue never fires');
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

    assert.equal(stats.fatalCount, 0, JSON.stringify(stats.errors));
    const pageErrors = browser.console.filter((l) => l.startsWith('[pageerror]'));
    assert.deepEqual(pageErrors, []);
  } catch (e) {
    const stats = browser ? await readStats(browser.page).catch(() => null) : null;
    if (stats) console.error(`player errors: ${JSON.stringify(stats.errors)}`);
    if (browser) console.error(browser.describe());
    if (publisher) console.error(publisher.describe());
    if (gateway) console.error(`gateway:\n  ${gateway.describe()}`);
    throw e;
  } finally {
    await cleanup.run();
  }
});
