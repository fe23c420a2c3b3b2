// The built-in test source: `dropline serve --test-source demo` publishes a GStreamer test pattern
// (with a wall-clock overlay) into its own SRT port; the demo page plays it for 10 s without a stall
// and a screenshot is left in $TMPDIR for a person to look at.

import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import os from 'node:os';
import path from 'node:path';
import {
  Cleanup,
  shutdownAll,
  launchBrowser,
  sampleStats,
  startGateway,
  waitForPlaying,
  waitForStream,
} from './helpers.mjs';

const STREAM = 'demo';
const PLAY_FOR_MS = 10_000;

// Whatever happens (even a test timeout), leave no gateway, ffmpeg or browser behind.
after(shutdownAll);

test('built-in test source plays on the demo page', { timeout: 180_000 }, async () => {
  const cleanup = new Cleanup();
  let gateway;
  let browser;
  try {
    gateway = await startGateway({ extraArgs: ['--test-source', STREAM] });
    cleanup.add(() => gateway.stop());
    const check = () => gateway.check();

    await waitForStream(gateway.httpUrl, STREAM, { timeoutMs: 30_000, check });

    browser = await launchBrowser();
    cleanup.add(() => browser.close());
    const { page } = browser;
    await page.goto(`${gateway.httpUrl}/?stream=${STREAM}`, { waitUntil: 'load', timeout: 30_000 });
    await waitForPlaying(page, { timeoutMs: 30_000, check });

    const samples = await sampleStats(page, { durationMs: PLAY_FOR_MS, intervalMs: 500, check });
    const last = samples.at(-1);

    const shot = path.join(os.tmpdir(), `dropline-demo-${Date.now()}.png`);
    await page.screenshot({ path: shot });
    console.log(`screenshot: ${shot}`);
    console.log(
      `e2e demo: latency=${last.latencyMs} ms hls.latency=${last.hlsLatency} s ` +
        `video=${last.videoWidth}x${last.videoHeight} parts=${last.partCount} stalls=${last.stalls} ` +
        `errors=${last.errorCount} fatal=${last.fatalCount} currentTime=${last.currentTime} s`,
    );

    assert.equal(last.fatalCount, 0, `no fatal errors expected: ${JSON.stringify(last.errors)}`);
    assert.equal(
      last.stalls,
      0,
      `no stalls expected: ${JSON.stringify(last.stallLog)}; errors: ${JSON.stringify(last.errors)}`,
    );
    assert.ok(samples.every((s) => s.playing), 'player must keep playing');
    assert.ok(
      last.currentTime - samples[0].currentTime > (PLAY_FOR_MS / 1000) * 0.8,
      `playback must advance ~${PLAY_FOR_MS / 1000} s (from ${samples[0].currentTime} to ${last.currentTime})`,
    );
    assert.ok(last.videoWidth > 0 && last.videoHeight > 0, 'video must have decoded frames');
  } catch (e) {
    if (browser) console.error(browser.describe());
    if (gateway) console.error(`gateway:\n  ${gateway.describe()}`);
    throw e;
  } finally {
    await cleanup.run();
  }
});
