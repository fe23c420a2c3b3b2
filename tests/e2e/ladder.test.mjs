// ABR ladder end to end: the gateway, configured with one 180p rung, transcodes ffmpeg's 640x360
// source (H.264 with 2 B-frames between references, as many venue encoders send); hls.js in
// headless Chromium, pinned to the rung (`?height=180`), plays it with the source's audio
// rendition, without stalls, at low latency, with blocking reloads and parts. Then hls.js switches
// up to the source and back down mid-stream, as its ABR would: renditions cut on the same MSN and
// part boundaries switch without a stall.

import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import {
  Cleanup,
  LiveStream,
  assertAudioRenditionLoaded,
  countRequests,
  describeSamples,
  launchBrowser,
  makeTempDir,
  percentile,
  sampleStats,
  shutdownAll,
  waitForPlaying,
} from './helpers.mjs';

const STREAM = 'ladder';
const SAMPLE_FOR_MS = 15_000;
const SWITCH_WITHIN_MS = 20_000;
const AFTER_SWITCH_MS = 6_000;

after(shutdownAll);

test('hls.js plays a 180p ladder rung with the source audio', { timeout: 180_000 }, async () => {
  const cleanup = new Cleanup();
  let samples = [];
  const live = new LiveStream(STREAM);
  const { check } = live;
  try {
    const config = path.join(makeTempDir('ladder'), 'dropline.toml');
    writeFileSync(config, '[hls]\nladder = [{ name = "180p", height = 180, bitrate_kbps = 300 }]\n');
    const multivariant = await live.start(cleanup, { extraArgs: ['--config', config], bFrames: 2 });
    assert.match(multivariant, /RESOLUTION=320x180,FRAME-RATE=30\.000,AUDIO="audio"\n180p\/playlist\.m3u8/);

    const browser = await launchBrowser();
    cleanup.add(() => browser.close());
    const { page } = browser;
    const requests = countRequests(page);
    await page.goto(`${live.gateway.httpUrl}/?stream=${STREAM}&height=180`, { waitUntil: 'load', timeout: 30_000 });
    await waitForPlaying(page, { timeoutMs: 30_000, check });
    samples = await sampleStats(page, { durationMs: SAMPLE_FOR_MS, intervalMs: 500, check });
    const last = samples.at(-1);
    const latencies = samples.map((s) => s.latencyMs).filter((x) => x !== null);
    console.log(
      `ladder: ${last.videoWidth}x${last.videoHeight} latency end=${last.latencyMs} ms ` +
        `p50=${percentile(latencies, 50)} ms stalls=${last.stalls} requests=${JSON.stringify(requests)}`,
    );
    assert.equal(last.videoHeight, 180, 'the rung plays');
    assert.ok(requests['180p']?.blocking > 0 && requests['180p']?.parts > 0, 'rung parts by blocking reload');
    assertAudioRenditionLoaded(assert, requests);
    assert.equal(last.fatalCount, 0, JSON.stringify(last.errors));
    assert.equal(last.stalls, 0, `no stall expected:\n${describeSamples(samples)}`);
    assert.ok(last.latencyMs < 2_000, `latency ${last.latencyMs} ms`);

    // Up to the source and back down to the rung, each with what hls.js loads next.
    for (const height of [360, 180]) {
      const before = await page.evaluate(() => window.droplineStats());
      assert.ok(await page.evaluate((h) => window.droplineSwitchTo(h), height), `no ${height}p variant`);
      const deadline = Date.now() + SWITCH_WITHIN_MS;
      let now = before;
      while (now.videoHeight !== height && Date.now() < deadline) {
        await new Promise((r) => setTimeout(r, 200));
        now = await page.evaluate(() => window.droplineStats());
      }
      assert.equal(now.videoHeight, height, `still ${now.videoHeight}p ${SWITCH_WITHIN_MS} ms after asking for ${height}p`);
      const after = await sampleStats(page, { durationMs: AFTER_SWITCH_MS, intervalMs: 500, check });
      const end = after.at(-1);
      console.log(
        `ladder: switched to ${height}p in ${SWITCH_WITHIN_MS - (deadline - Date.now())} ms, ` +
          `latency ${end.latencyMs} ms, stalls ${end.stalls - before.stalls}`,
      );
      assert.equal(end.fatalCount, 0, JSON.stringify(end.errors));
      assert.equal(end.stalls, before.stalls, `no stall at the switch to ${height}p:\n${describeSamples(after)}`);
      assert.ok(after.every((x) => x.playing), `playing after the switch to ${height}p`);
    }
    assert.ok(requests.main?.parts > 0, `source parts after the switch up: ${JSON.stringify(requests)}`);
  } catch (e) {
    e.message += `\n${live.describe()}`;
    throw e;
  } finally {
    await cleanup.run();
  }
});
