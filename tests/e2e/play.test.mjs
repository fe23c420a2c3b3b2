// End to end: ffmpeg publishes H.264/AAC MPEG-TS over SRT, the gateway packages LL-HLS, and
// headless Chromium plays it with hls.js from the demo page. Asserts the low-latency features are
// in use (blocking reload, parts), that playback never stalls, and that wall-clock latency
// (Date.now() − PROGRAM-DATE-TIME of the frame on screen) ends below 2 s.

import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import {
  Cleanup,
  describeSamples,
  LiveStream,
  assertAudioRenditionLoaded,
  countRequests,
  shutdownAll,
  launchBrowser,
  percentile,
  sampleStats,
  waitForPlaying,
} from './helpers.mjs';

const STREAM = 'e2e';
const SAMPLE_FOR_MS = 25_000;
const SAMPLE_EVERY_MS = 500;
const MAX_END_LATENCY_MS = 2_000;

// Whatever happens (even a test timeout), leave no gateway, ffmpeg or browser behind.
after(shutdownAll);

test(
  'LL-HLS in Chromium: blocking reload, parts, no stall, latency < 2 s',
  { timeout: 240_000 },
  async () => {
    const cleanup = new Cleanup();
    const live = new LiveStream(STREAM);
    let browser;
    let samples = [];
    try {
      await live.start(cleanup);
      const { check } = live;

      browser = await launchBrowser();
      cleanup.add(() => browser.close());
      const { page } = browser;
      const requests = countRequests(page);
      await page.goto(`${live.gateway.httpUrl}/?stream=${STREAM}`, { waitUntil: 'load', timeout: 30_000 });
      const first = await waitForPlaying(page, { timeoutMs: 30_000, check });
      console.log(
        `playing after ${first.firstPlayingAtMs} ms (hls.js ${first.hlsVersion}, ` +
          `${first.videoWidth}x${first.videoHeight}, PART-TARGET ${first.partTarget} s, ` +
          `PART-HOLD-BACK ${first.partHoldBack} s)`,
      );

      samples = await sampleStats(page, { durationMs: SAMPLE_FOR_MS, intervalMs: SAMPLE_EVERY_MS, check });
      const last = samples.at(-1);
      const latencies = samples.map((s) => s.latencyMs).filter((x) => x !== null);
      const p50 = percentile(latencies, 50);
      const max = percentile(latencies, 100);
      const hlsLat = percentile(
        samples.map((s) => s.hlsLatency).filter((x) => x !== null),
        50,
      );
      console.log(
        `e2e play: latency end=${last.latencyMs} ms p50=${p50} ms max=${max} ms ` +
          `hls.latency p50=${hlsLat} s target=${last.targetLatency} s buffer=${last.bufferMs} ms ` +
          `parts=${last.partCount} canBlockReload=${last.canBlockReload} stalls=${last.stalls} ` +
          `errors=${last.errorCount} fatal=${last.fatalCount} dropped=${last.droppedFrames}/${last.totalFrames} ` +
          `samples=${samples.length} audioTracks=${last.audioTracks} requests=${JSON.stringify(requests)}`,
      );

      assert.equal(last.canBlockReload, true, 'media playlist must advertise CAN-BLOCK-RELOAD=YES');
      assert.ok(last.partCount > 0, `media playlist must list EXT-X-PART (partCount=${last.partCount})`);
      // Audio is a rendition of its own (EXT-X-MEDIA TYPE=AUDIO): hls.js must have loaded it.
      assert.equal(last.audioTracks, 1, 'hls.js must see the one EXT-X-MEDIA audio rendition');
      assertAudioRenditionLoaded(assert, requests);
      assert.equal(
        last.fatalCount,
        0,
        `no fatal hls.js errors expected: ${JSON.stringify(last.errors.filter((e) => e.fatal))}`,
      );
      assert.equal(
        last.stalls,
        0,
        `no stalls expected after the first 'playing' (hls.js stalled=${last.stalledErrors}, ` +
          `video waiting=${last.waitingEvents}): ${JSON.stringify(last.stallLog)}; ` +
          `errors: ${JSON.stringify(last.errors)}`,
      );
      assert.ok(samples.every((s) => s.playing), 'player must keep playing for the whole sampling window');
      assert.ok(last.latencyMs !== null, 'latency needs EXT-X-PROGRAM-DATE-TIME (hls.playingDate was null)');
      assert.ok(
        last.latencyMs > 0,
        `latency ${last.latencyMs} ms: PROGRAM-DATE-TIME lies in the future (gateway and browser share one clock)`,
      );
      assert.ok(
        last.latencyMs < MAX_END_LATENCY_MS,
        `end latency ${last.latencyMs} ms must be < ${MAX_END_LATENCY_MS} ms (p50 ${p50} ms, max ${max} ms)`,
      );
    } catch (e) {
      if (samples.length) console.error(describeSamples(samples));
      if (browser) console.error(browser.describe());
      console.error(live.describe());
      throw e;
    } finally {
      await cleanup.run();
    }
  },
);
