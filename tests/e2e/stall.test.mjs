// Source trouble (issue 4.4): the publisher freezes for a few seconds (SIGSTOP keeps its SRT
// connection but sends nothing), then resumes. dropline chooses to wait rather than invent media:
// a blocking reload for the next part stays open while the source is silent (rfc8216bis §6.2.5.2:
// the server holds the request until the part is available, and answers 503 only after
// 3 × target duration), and no stale playlist is served in its place. Afterwards the timeline
// continues (same media sequence, no EXT-X-DISCONTINUITY, ffmpeg's timestamps did not jump) and
// hls.js recovers by itself: it plays on with no fatal error and its latency comes back down.

import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  Cleanup,
  LiveStream,
  launchBrowser,
  sampleStats,
  shutdownAll,
  waitForPlaying,
} from './helpers.mjs';

const STREAM = 'stall';
const STALL_MS = 3_000;
const RECOVER_WITHIN_MS = 15_000;
const MAX_LATENCY_AFTER_MS = 2_500;

after(shutdownAll);

/** Media playlist URL: the first URI line of the multivariant playlist, resolved against it. */
async function mediaPlaylistUrl(multivariantUrl) {
  const text = await (await fetch(multivariantUrl)).text();
  const uri = text.split('\n').find((l) => l.trim() && !l.startsWith('#'));
  assert.ok(uri, `no variant in the multivariant playlist:\n${text}`);
  return new URL(uri.trim(), multivariantUrl).href;
}

/** The next part to ask for: the preload hint's MSN/part, computed from the playlist's tail. */
function nextPart(text) {
  const msn = Number(/#EXT-X-MEDIA-SEQUENCE:(\d+)/.exec(text)[1]);
  let segments = 0;
  let openParts = 0;
  for (const line of text.split('\n')) {
    if (line.startsWith('#EXT-X-PART:')) openParts += 1;
    else if (line && !line.startsWith('#')) {
      segments += 1;
      openParts = 0;
    }
  }
  return { msn: msn + segments, part: openParts };
}

test('a frozen source: blocking reloads wait, the timeline continues, hls.js recovers', { timeout: 180_000 }, async () => {
  const cleanup = new Cleanup();
  const live = new LiveStream(STREAM);
  let browser;
  try {
    await live.start(cleanup);
    const { check } = live;
    const multivariant = `${live.gateway.httpUrl}/${STREAM}/index.m3u8`;
    const media = await mediaPlaylistUrl(multivariant);

    browser = await launchBrowser();
    cleanup.add(() => browser.close());
    const { page } = browser;
    await page.goto(`${live.gateway.httpUrl}/?stream=${STREAM}`, { waitUntil: 'load', timeout: 30_000 });
    await waitForPlaying(page, { timeoutMs: 30_000, check });
    await sleep(5_000);

    const before = await (await fetch(media)).text();
    const hint = nextPart(before);
    // A whole segment past the hinted part: what the gateway still holds when the source stops (SRT's
    // latency, audio the TS muxer sends behind its video) cannot complete it before the source resumes.
    const want = { msn: hint.msn + 1, part: hint.part };
    // Stop the source.
    live.publisher.proc.kill('SIGSTOP');
    const stoppedAt = Date.now();
    const blocked = fetch(`${media}?_HLS_msn=${want.msn}&_HLS_part=${want.part}`).then(async (r) => ({
      status: r.status,
      text: await r.text(),
      at: Date.now(),
    }));
    const early = await Promise.race([blocked, sleep(STALL_MS).then(() => null)]);
    live.publisher.proc.kill('SIGCONT');
    const resumedAt = Date.now();
    assert.equal(
      early,
      null,
      `a blocking reload must not be answered while the source is silent: ${JSON.stringify(early)?.slice(0, 300)}`,
    );

    const answer = await blocked;
    console.log(
      `stall: froze publisher ${resumedAt - stoppedAt} ms; blocking reload answered ${answer.at - resumedAt} ms ` +
        `after resume with HTTP ${answer.status}`,
    );
    assert.equal(answer.status, 200, `blocking reload after resume: HTTP ${answer.status}`);
    const after = nextPart(answer.text);
    assert.ok(
      after.msn > want.msn || (after.msn === want.msn && after.part > want.part),
      `the answer must contain the awaited part: wanted ${JSON.stringify(want)}, playlist ends before ${JSON.stringify(after)}`,
    );
    const beforeSeq = Number(/#EXT-X-MEDIA-SEQUENCE:(\d+)/.exec(before)[1]);
    const afterSeq = Number(/#EXT-X-MEDIA-SEQUENCE:(\d+)/.exec(answer.text)[1]);
    assert.ok(afterSeq >= beforeSeq, `media sequence went back: ${beforeSeq} -> ${afterSeq}`);
    assert.ok(
      !answer.text.includes('#EXT-X-DISCONTINUITY\n') && !answer.text.includes('#EXT-X-GAP'),
      `a freeze without a timestamp jump must not cut the timeline:\n${answer.text}`,
    );

    // The player rides it out on its own.
    const samples = await sampleStats(page, { durationMs: RECOVER_WITHIN_MS, intervalMs: 500, check });
    const last = samples.at(-1);
    console.log(
      `stall: hls.js after resume: stalls=${last.stalls} fatal=${last.fatalCount} errors=${JSON.stringify(last.errors)} ` +
        `latency end=${last.latencyMs} ms currentTime ${samples[0].currentTime} -> ${last.currentTime}`,
    );
    assert.equal(last.fatalCount, 0, `no fatal hls.js error: ${JSON.stringify(last.errors)}`);
    assert.ok(last.playing, 'the player must be playing again');
    assert.ok(last.currentTime > samples[0].currentTime + 5, 'playback must advance after the freeze');
    assert.ok(
      last.latencyMs !== null && last.latencyMs < MAX_LATENCY_AFTER_MS,
      `latency must come back under ${MAX_LATENCY_AFTER_MS} ms within ${RECOVER_WITHIN_MS} ms, was ${last.latencyMs}`,
    );
  } catch (e) {
    if (browser) console.error(browser.describe());
    console.error(live.describe());
    throw e;
  } finally {
    await cleanup.run();
  }
});
