// The player SDK in Chromium: the demo page imports /sdk/dropline-overlay.mjs from the gateway and
// attaches it to hls.js playing a live stream. To reach cases the gateway never produces (joined
// mid-offer, expired, malformed), both carriages are supplied here, in the form the cue carriage
// contract gives them (the gateway's own carriage is tested by cues.test.mjs):
//   - EXT-X-DATERANGE tags are added to the real media playlist responses (playwright route), so
//     hls.js parses them and the SDK maps START-DATE through the stream's real PROGRAM-DATE-TIME;
//   - emsg ID3 samples are injected with hls.trigger(Hls.Events.FRAG_PARSING_METADATA, …), as hls.js
//     emits them after demuxing a part.
// Asserts each cue fires once, on the frame of its media time (≤ 40 ms off), a cue joined in the middle
// fires at once flagged late, an expired one never fires, and malformed input breaks nothing.

import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Cleanup, LiveStream, launchBrowser, readStats, shutdownAll, waitForPlaying } from './helpers.mjs';
import { base64url, cueId3, cueJson } from '../../overlay/sdk/test/fixtures.mjs';

const STREAM = 'sdk';
const MAX_ERROR_S = 0.04; // the goal: within one frame, ≤ 40 ms
const EMSG = 'https://aomedia.org/emsg/ID3';

after(shutdownAll);

/** `#EXT-X-DATERANGE` for a cue JSON, as the contract writes it. */
function dateRangeTag(json) {
  const cue = JSON.parse(json);
  const duration = cue.duration_ms === undefined ? '' : `,DURATION=${(cue.duration_ms / 1000).toFixed(3)}`;
  return (
    `#EXT-X-DATERANGE:ID="${cue.id}",CLASS="com.dropline.${cue.kind}",START-DATE="${cue.start}"` +
    `${duration},X-PAYLOAD="${base64url(json)}"`
  );
}

// In the page: what the SDK needs from the live stream to place a cue at media time `t`.
function pageTimeline() {
  const hls = window.droplineOverlay.hls;
  const details = hls.latestLevelDetails;
  const frags = details.fragments.filter((f) => Number.isFinite(f.programDateTime));
  return {
    currentTime: window.droplineOverlay.video.currentTime,
    frags: frags.map((f) => ({ start: f.start, programDateTime: f.programDateTime })),
  };
}

/** PROGRAM-DATE-TIME (ms) of media time t, from the fragment at or before t. */
function dateOfMediaTime(frags, t) {
  let anchor = frags[0];
  for (const f of frags) if (f.start <= t) anchor = f;
  return Math.round(anchor.programDateTime + (t - anchor.start) * 1000);
}

test('player SDK in Chromium: cues from both carriages fire once, on time', { timeout: 180_000 }, async () => {
  const cleanup = new Cleanup();
  const live = new LiveStream(STREAM);
  let browser;
  try {
    await live.start(cleanup);
    const { check } = live;
    browser = await launchBrowser();
    cleanup.add(() => browser.close());
    const { page } = browser;

    // DATERANGE carriage: every media playlist answer gets the tags added so far.
    const dateRanges = [];
    await page.route(/\/playlist\.m3u8/, async (route) => {
      try {
        const res = await route.fetch();
        let body = await res.text();
        if (dateRanges.length && body.includes('#EXT-X-PROGRAM-DATE-TIME')) {
          body = body.replace(/^#EXT-X-PROGRAM-DATE-TIME/m, `${dateRanges.join('\n')}\n$&`);
        }
        // The body is handed over decoded: drop the encoding and length of the original.
        const headers = { ...res.headers() };
        delete headers['content-encoding'];
        delete headers['content-length'];
        await route.fulfill({ status: res.status(), headers, body });
      } catch {
        // hls.js dropped the request, or the page closed, while a blocking reload was held
      }
    });
    cleanup.add(() => page.unrouteAll({ behavior: 'ignoreErrors' }));

    await page.goto(`${live.gateway.httpUrl}/?stream=${STREAM}`, { waitUntil: 'load', timeout: 30_000 });
    await waitForPlaying(page, { timeoutMs: 30_000, check });
    const sdkLoaded = await page.evaluate(() => typeof window.droplineOverlay?.addEventListener === 'function');
    assert.ok(sdkLoaded, `the page did not attach the SDK; console:\n${browser.console.join('\n')}`);
    await sleep(2_000); // let hls.js settle on its target latency

    // hls.js's own idea of the PROGRAM-DATE-TIME on screen when each cue fires: an independent check
    // of the START-DATE mapping.
    await page.evaluate(() => {
      window.pdtAtFire = {};
      window.droplineOverlay.addEventListener('cue', (e) => {
        window.pdtAtFire[e.detail.id] = window.droplineOverlay.hls.playingDate?.getTime() ?? null;
      });
    });
    const { currentTime: t0, frags } = await page.evaluate(pageTimeline);
    assert.ok(frags.length > 0, 'the media playlist must carry EXT-X-PROGRAM-DATE-TIME');
    const iso = (t) => new Date(dateOfMediaTime(frags, t)).toISOString();

    // Four product cards by emsg only, four stock stages by DATERANGE only, one offer by both (emsg in
    // two renditions), one offer joined 3 s after it opened (30 s long: fires at once, late), one that
    // closed 4 s ago (never fires).
    const cards = [0, 1, 2, 3].map((i) => ({
      at: t0 + 2.0 + 0.7 * i,
      json: cueJson({
        id: `card-${i}`,
        kind: 'product-card',
        start: iso(t0 + 2.0 + 0.7 * i),
        payload: { title: `Tee ${i}`, price: '29 EUR' },
      }),
    }));
    const stages = [0, 1, 2, 3].map((i) => ({
      json: cueJson({ id: `stage-${i}`, kind: 'stock-stage', start: iso(t0 + 2.3 + 0.7 * i), payload: { label: `stage ${i}` } }),
    }));
    const offer = {
      at: t0 + 3.2,
      json: cueJson({ id: 'offer-1', kind: 'offer-open', start: iso(t0 + 3.2), durationMs: 20_000, payload: { title: 'Tee 3' } }),
    };
    const running = { at: t0 - 3, json: cueJson({ id: 'offer-0', kind: 'offer-open', start: iso(t0 - 3), durationMs: 30_000 }) };
    const expired = { at: t0 - 5, json: cueJson({ id: 'stage-x', kind: 'stock-stage', start: iso(t0 - 5), durationMs: 1_000 }) };

    dateRanges.push(...[...stages, offer, expired].map((c) => dateRangeTag(c.json)));
    // Malformed: a DATERANGE of ours whose payload is not base64url JSON.
    dateRanges.push(`#EXT-X-DATERANGE:ID="bad-1",CLASS="com.dropline.custom",START-DATE="${iso(t0 + 1)}",X-PAYLOAD="%%"`);

    const samples = [
      ...[...cards, offer, offer, running, expired].map((c) => ({ pts: c.at, data: [...cueId3(c.json)] })),
      // Truncated tag. (Not by much: hls.js 1.7.4's own ID3 reader walks a declared size of 256 MiB
      // in 10-byte steps on the main thread and freezes the page for tens of seconds.)
      { pts: t0 + 1, data: [0x49, 0x44, 0x33, 4, 0, 0, 0, 0, 0, 0x40, 0x54, 0x58] },
      { pts: t0 + 1, data: [...cueId3('{"id":')] }, // not JSON
      { pts: t0 + 1, data: [...cueId3(cueJson({ id: 'bad-2', kind: 'coupon' }))] }, // unknown kind
    ];
    await page.evaluate(
      ({ samples, type }) => {
        const hls = window.droplineOverlay.hls;
        const frag = hls.latestLevelDetails.fragments.at(-1);
        hls.trigger(window.Hls.Events.FRAG_PARSING_METADATA, {
          id: 'main',
          frag,
          details: hls.latestLevelDetails,
          samples: samples.map((s) => ({ pts: s.pts, dts: s.pts, duration: Infinity, type, data: Uint8Array.from(s.data) })),
        });
      },
      { samples, type: EMSG },
    );

    // Wait past the last cue time, plus a playlist reload or two for the DATERANGEs.
    const expectIds = [...cards, ...stages, offer, running].map((c) => JSON.parse(c.json).id);
    const deadline = Date.now() + 20_000;
    let fired = [];
    while (Date.now() < deadline) {
      check();
      fired = await page.evaluate(() => window.droplineCues.slice());
      if (expectIds.every((id) => fired.some((c) => c.id === id))) break;
      await sleep(250);
    }
    await sleep(1_000); // anything that would fire twice has had time to
    fired = await page.evaluate(() => window.droplineCues.slice());
    const pdtAtFire = await page.evaluate(() => window.pdtAtFire);
    const stats = await readStats(page);

    const ms = (s) => `${(s * 1000).toFixed(1)} ms`;
    const line = (c) =>
      `${c.id} ${c.kind} via ${c.carriage}: intended ${c.mediaTime.toFixed(3)} s, fired on frame ` +
      `${c.firedAt.toFixed(3)} s (error ${ms(c.firedAt - c.mediaTime)}), currentTime ${c.currentTime.toFixed(3)} s ` +
      `(error ${ms(c.currentTime - c.mediaTime)})${c.late ? ' LATE' : ''}`;
    console.log(`sdk e2e: t0=${t0.toFixed(3)} s, fired:\n  ${fired.map(line).join('\n  ')}`);

    const byId = (id) => fired.filter((c) => c.id === id);
    for (const id of expectIds) assert.equal(byId(id).length, 1, `${id} must fire exactly once: ${JSON.stringify(fired)}`);
    assert.equal(byId('stage-x').length, 0, 'an expired cue never fires');
    assert.equal(byId('bad-1').length + byId('bad-2').length, 0, 'malformed cues never fire');
    assert.equal(byId('offer-0')[0].late, true, 'joined mid-offer: fired at once, flagged late');
    const onTime = fired.filter((c) => c.id !== 'offer-0');
    for (const c of onTime) {
      assert.equal(c.carriage, c.id.startsWith('stage') ? 'daterange' : 'emsg', line(c));
      // Never early by more than half the largest step between frame callbacks the SDK allows for.
      assert.ok(c.firedAt - c.mediaTime >= -0.055, `fired early: ${line(c)}`);
    }

    // The error against the goal (one frame, ≤ 40 ms). A busy main thread delays a frame
    // callback, so this is printed rather than asserted; the bound below only catches a scheduler
    // that waits for timeupdate (every 250 ms) instead of frames.
    const errs = onTime.map((c) => Math.abs(c.firedAt - c.mediaTime)).sort((a, b) => a - b);
    const p50 = errs[Math.floor(errs.length / 2)];
    const within = errs.filter((e) => e <= MAX_ERROR_S).length;
    console.log(
      `sdk e2e: placement error |fired frame − intended| over ${errs.length} cues: ` +
        `p50 ${ms(p50)}, max ${ms(errs.at(-1))}, ` +
        `${within}/${errs.length} within ${ms(MAX_ERROR_S)}`,
    );
    assert.ok(p50 < 0.1, `half the cues fired more than ${ms(p50)} off their time`);

    // START-DATE went through the stream's PROGRAM-DATE-TIME. hls.js re-anchors the playlist on the
    // media timeline as parts are parsed, so the time aimed at from the playlist at t0 moves a little;
    // the SDK maps again on every update. hls.playingDate when it fired is an independent check.
    for (const [i, st] of stages.entries()) {
      const [c] = byId(`stage-${i}`);
      const aimed = t0 + 2.3 + 0.7 * i;
      const pdtError = pdtAtFire[c.id] - Date.parse(JSON.parse(st.json).start);
      console.log(
        `sdk e2e: ${c.id} DATERANGE aimed at ${aimed.toFixed(3)} s, mapped to ${c.mediaTime.toFixed(3)} s ` +
          `(moved ${ms(c.mediaTime - aimed)}); hls.playingDate − START-DATE when it fired: ${pdtError} ms`,
      );
      assert.ok(Math.abs(c.mediaTime - aimed) < 0.5, line(c));
      assert.ok(Math.abs(pdtError) < 1000, `hls.playingDate was ${pdtError} ms off START-DATE when it fired`);
    }

    // The demo page shows them.
    const ui = await page.evaluate(() => ({
      badge: document.getElementById('stage-badge').textContent,
      card: document.getElementById('card-title').textContent,
      offerShown: !document.getElementById('offer').hidden,
      countdown: document.getElementById('offer-countdown').textContent,
    }));
    const shot = path.join(os.tmpdir(), `dropline-sdk-${Date.now()}.png`);
    await page.screenshot({ path: shot });
    console.log(`sdk e2e: page shows ${JSON.stringify(ui)}; screenshot: ${shot}`);
    assert.equal(ui.badge, 'stage 3');
    assert.equal(ui.card, 'Tee 3');
    assert.ok(ui.offerShown && /^0:1\d$/.test(ui.countdown), JSON.stringify(ui));

    assert.equal(stats.fatalCount, 0, JSON.stringify(stats.errors));
    assert.ok(stats.playing, 'still playing after malformed input');
    const pageErrors = browser.console.filter((l) => l.startsWith('[pageerror]'));
    assert.deepEqual(pageErrors, []);
  } catch (e) {
    const stats = browser ? await readStats(browser.page).catch(() => null) : null;
    if (stats) console.error(`player errors: ${JSON.stringify(stats.errors)}\nstalls: ${JSON.stringify(stats.stallLog)}`);
    if (browser) console.error(browser.describe());
    console.error(live.describe());
    throw e;
  } finally {
    await cleanup.run();
  }
});
