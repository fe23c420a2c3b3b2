// ABR ladder end to end: the gateway, configured with one 180p rung, transcodes ffmpeg's 640x360
// source; hls.js in headless Chromium, pinned to the rung (`?height=180`), plays it with the
// source's audio rendition, without stalls, at low latency, with blocking reloads and parts.

import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import {
  Cleanup,
  assertAudioRenditionLoaded,
  countRequests,
  describeSamples,
  launchBrowser,
  makeTempDir,
  percentile,
  sampleStats,
  shutdownAll,
  startGateway,
  startPublisher,
  waitForPlaying,
  waitForStream,
} from './helpers.mjs';

const STREAM = 'ladder';
const SAMPLE_FOR_MS = 15_000;

after(shutdownAll);

test('hls.js plays a 180p ladder rung with the source audio', { timeout: 180_000 }, async () => {
  const cleanup = new Cleanup();
  let samples = [];
  let gateway;
  try {
    const config = path.join(makeTempDir('ladder'), 'dropline.toml');
    writeFileSync(config, '[hls]\nladder = [{ name = "180p", height = 180, bitrate_kbps = 300 }]\n');
    gateway = await startGateway({ extraArgs: ['--config', config] });
    cleanup.add(() => gateway.stop());
    const publisher = startPublisher({ srt: gateway.srt, name: STREAM });
    cleanup.add(() => publisher.stop());
    const check = () => {
      gateway.check();
      publisher.check();
    };
    const multivariant = await waitForStream(gateway.httpUrl, STREAM, { timeoutMs: 30_000, check });
    assert.match(multivariant, /RESOLUTION=320x180,FRAME-RATE=30\.000,AUDIO="audio"\n180p\/playlist\.m3u8/);

    const browser = await launchBrowser();
    cleanup.add(() => browser.close());
    const { page } = browser;
    const requests = countRequests(page);
    await page.goto(`${gateway.httpUrl}/?stream=${STREAM}&height=180`, { waitUntil: 'load', timeout: 30_000 });
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
  } catch (e) {
    if (gateway) e.message += `\n${gateway.describe()}`;
    throw e;
  } finally {
    await cleanup.run();
  }
});
