// End to end with a second, independent LL-HLS client: ffmpeg publishes H.264/AAC MPEG-TS over
// SRT and headless Chromium plays the stream with Shaka Player (web/shaka.html, low-latency mode)
// instead of hls.js. The H.264 has B-frames (2 between references), as many venue encoders send:
// frames arrive out of presentation order and every part carries composition offsets. The
// segments listed meanwhile must decode whole (no hole, frame count = duration × 30) and hold them. Asserts Shaka plays, never stalls after it started, reports no error, and
// that wall-clock latency (Date.now() − PROGRAM-DATE-TIME of the playhead) ends below 3 s.

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
  makeTempDir,
  percentile,
  sampleStats,
  waitForPlaying,
} from './helpers.mjs';
import { checkMedia, collectSegments } from './media_check.mjs';

const STREAM = 'shaka';
const SAMPLE_FOR_MS = 20_000;
const SAMPLE_EVERY_MS = 500;
const MAX_END_LATENCY_MS = 3_000;
const statsFn = 'shakaStats';

after(shutdownAll);

test(
  'LL-HLS in Chromium with Shaka Player: plays, no stall, no error, latency < 3 s',
  { timeout: 180_000 },
  async () => {
    const cleanup = new Cleanup();
    const live = new LiveStream(STREAM);
    let browser;
    let samples = [];
    try {
      await live.start(cleanup, { bFrames: 2 });
      const { check } = live;

      // The page loads Shaka's compiled build straight from web/node_modules via --web-root.
      const lib = await fetch(`${live.gateway.httpUrl}/node_modules/shaka-player/dist/shaka-player.compiled.js`);
      assert.equal(lib.status, 200, 'gateway must serve shaka-player.compiled.js from --web-root');
      await lib.arrayBuffer();

      browser = await launchBrowser();
      cleanup.add(() => browser.close());
      const { page } = browser;
      // What Shaka asks the gateway for: blocking playlist reloads and parts prove LL-HLS is used,
      // in the video rendition (main) and in the separate audio rendition.
      const requests = countRequests(page);
      await page.goto(`${live.gateway.httpUrl}/shaka.html?stream=${STREAM}`, { waitUntil: 'load', timeout: 30_000 });
      const first = await waitForPlaying(page, { timeoutMs: 30_000, check, statsFn });
      console.log(
        `shaka ${first.shakaVersion}: playing after ${first.firstPlayingAtMs} ms ` +
          `(${first.videoWidth}x${first.videoHeight}, live=${first.live}, lowLatencyMode=${first.lowLatencyMode})`,
      );
      assert.equal(first.lowLatencyMode, true, 'Shaka must run with streaming.lowLatencyMode');
      assert.equal(first.live, true, 'Shaka must see a live presentation');

      const segments = collectSegments(`${live.gateway.httpUrl}/${STREAM}/main/playlist.m3u8`);
      samples = await sampleStats(page, { durationMs: SAMPLE_FOR_MS, intervalMs: SAMPLE_EVERY_MS, check, statsFn });
      const media = checkMedia(await segments.stop(), makeTempDir('shaka'));
      const last = samples.at(-1);
      const latencies = samples.map((s) => s.latencyMs).filter((x) => x !== null);
      const p50 = percentile(latencies, 50);
      const max = percentile(latencies, 100);
      const shakaLat = percentile(
        samples.map((s) => s.shakaLiveLatency).filter((x) => Number.isFinite(x)),
        50,
      );
      console.log(
        `e2e shaka: latency end=${last.latencyMs} ms p50=${p50} ms max=${max} ms ` +
          `shaka liveLatency p50=${shakaLat} s buffer=${last.bufferMs} ms stalls=${last.stalls} ` +
          `(buffering=${last.bufferingEvents} waiting=${last.waitingEvents} stallsDetected=${last.stallsDetected} ` +
          `gapsJumped=${last.gapsJumped}) errors=${last.errorCount} ` +
          `dropped=${last.droppedFrames}/${last.decodedFrames} samples=${samples.length} ` +
          `requests=${JSON.stringify(requests)} media: ${media.frames} frames (${media.bFrames} B) ` +
          `in ${media.seconds.toFixed(3)} s`,
      );
      assert.deepEqual(media.problems, [], 'the packaged media must be whole');
      assert.ok(media.bFrames > media.frames / 3, `the source must have B-frames: ${media.bFrames} of ${media.frames}`);

      assert.ok(requests.main?.blocking > 0, `Shaka must use blocking playlist reload: ${JSON.stringify(requests)}`);
      assert.ok(requests.main?.parts > 0, `Shaka must fetch EXT-X-PART parts: ${JSON.stringify(requests)}`);
      assertAudioRenditionLoaded(assert, requests);
      assert.equal(last.errorCount, 0, `no Shaka errors expected: ${JSON.stringify(last.errors)}`);
      assert.equal(
        last.stalls,
        0,
        `no stalls expected after the first 'playing': ${JSON.stringify(last.stallLog)}`,
      );
      assert.ok(samples.every((s) => s.playing), 'Shaka must keep playing for the whole sampling window');
      assert.ok(
        last.currentTime - first.currentTime > (SAMPLE_FOR_MS / 1000) * 0.8,
        `playhead must advance ~${SAMPLE_FOR_MS / 1000} s (from ${first.currentTime} to ${last.currentTime})`,
      );
      assert.ok(last.latencyMs !== null, 'latency needs PROGRAM-DATE-TIME (getPlayheadTimeAsDate() was null)');
      assert.ok(last.latencyMs > 0, `latency ${last.latencyMs} ms: PROGRAM-DATE-TIME lies in the future`);
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
