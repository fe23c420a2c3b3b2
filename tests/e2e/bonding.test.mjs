// The bonding "Show" end to end: ffmpeg → srtla-send → 3 impaired links (`impair` relays: 2–5 %
// loss both ways, 40–150 ms delay) → the gateway's SRTLA receiver → LL-HLS. Mid-stream one link
// dies and a fourth is added. The packaged stream must have no gap and no decode error (ffmpeg
// decodes every segment; frame count = duration × 30; no EXT-X-DISCONTINUITY / EXT-X-GAP), and
// hls.js in Chromium must play it without a stall.

import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  Cleanup,
  connectableAddr,
  launchBrowser,
  makeTempDir,
  sampleStats,
  shutdownAll,
  startGateway,
  startPublisher,
  waitForPlaying,
  waitForStream,
} from './helpers.mjs';
import { startImpair, startSrtlaSend } from './links.mjs';
import { checkMedia, collectSegments } from './media_check.mjs';

const STREAM = 'bonded';
// SRT's retransmission window must cover several round trips of the worst link (2 × 150 ms) with
// 5 % loss each way: with 1 s, a packet whose NAK or resend is lost twice was given up now and then
// (0–17 packets per run, each a missing frame and an hls.js stall at the hole); 2 s, as bonding
// encoders use on cellular links, gave 0 in every run, also with two busy loops on 2 cores.
const SRT_LATENCY_MS = 2_000;
const LINK = ['--delay-ms', '40', '--jitter-ms', '110'];
const LOSSES = ['0.02', '0.03', '0.05', '0.03'];
const SAMPLE_FOR_MS = 24_000;
const KILL_AT_MS = 6_000;
const ADD_AT_MS = 12_000;

after(shutdownAll);

test(
  'bonded SRTLA over 3 impaired links, one dies, one is added: no gap, no decode error, no stall',
  { timeout: 120_000 },
  async () => {
    const cleanup = new Cleanup();
    let gateway;
    let publisher;
    let sender;
    let browser;
    try {
      gateway = await startGateway({
        extraArgs: ['--srtla-listen', '127.0.0.1:0'],
        env: { DROPLINE_SRT_LATENCY_MS: String(SRT_LATENCY_MS) },
      });
      cleanup.add(() => gateway.stop());
      assert.ok(gateway.addrs.srtla, 'ready line must list srtla=');
      const receiver = connectableAddr(gateway.addrs.srtla).hostPort;
      const link = (i) => startImpair(receiver, [...LINK, '--loss', LOSSES[i], '--seed', String(i + 1)], { cleanup });
      const links = [await link(0), await link(1), await link(2)];
      sender = await startSrtlaSend(
        receiver,
        links.map((l) => l.listen),
        { cleanup },
      );
      publisher = startPublisher({ srt: { hostPort: sender.srt }, name: STREAM, latencyMs: SRT_LATENCY_MS });
      cleanup.add(() => publisher.stop());
      const check = () => {
        gateway.check();
        publisher.check();
      };
      await waitForStream(gateway.httpUrl, STREAM, { timeoutMs: 30_000, check });
      const segments = collectSegments(`${gateway.httpUrl}/${STREAM}/main/playlist.m3u8`);

      browser = await launchBrowser();
      cleanup.add(() => browser.close());
      await browser.page.goto(`${gateway.httpUrl}/?stream=${STREAM}`, { waitUntil: 'load', timeout: 30_000 });
      await waitForPlaying(browser.page, { timeoutMs: 30_000, check });

      const marks = {};
      const scenario = (async () => {
        await sleep(KILL_AT_MS);
        links[0].down();
        marks.killed = Date.now();
        await sleep(ADD_AT_MS - KILL_AT_MS);
        links.push(await link(3));
        sender.add(links[3].listen);
        marks.added = Date.now();
      })();
      const samples = await sampleStats(browser.page, { durationMs: SAMPLE_FOR_MS, check });
      await scenario;
      // What SRT and the SRTLA receiver counted (lost_packets = given up after the latency).
      const api = async (p) => JSON.stringify(await (await fetch(`${gateway.httpUrl}/api/v1/${p}`)).json());
      const gatewayStats = `streams ${await api('streams')}\n  srtla ${await api('srtla')}`;
      const collected = await segments.stop();
      const media = checkMedia(collected, makeTempDir('bonding'));
      const linkStats = await Promise.all(links.map((l) => l.stats()));
      const last = samples.at(-1);
      console.log(
        `bonding: ${collected.segments.length} segments (${media.seconds.toFixed(1)} s, ${media.frames} frames) ` +
          `stalls=${last.stalls} fatal=${last.fatalCount} errors=${last.errorCount}\n  ${linkStats.join('\n  ')}\n` +
          `  link 0 killed at ${new Date(marks.killed).toISOString()}, link 3 added at ${new Date(marks.added).toISOString()}\n` +
          `  ${gatewayStats}\n` +
          `  segments: ${collected.segments.map((x) => `${x.msn}@${new Date(x.pdt).toISOString().slice(14, 23)}/${x.duration}`).join(' ')}`,
      );
      if (last.errorCount) console.log(`  hls.js errors: ${JSON.stringify(last.errors).slice(0, 1500)}`);
      assert.deepEqual(media.problems, [], 'packaged media must be whole');
      assert.equal(last.fatalCount, 0, `no fatal hls.js errors: ${JSON.stringify(last.errors)}`);
      assert.equal(last.stalls, 0, `no stalls: ${JSON.stringify(last.stallLog)}`);
      assert.ok(samples.every((s) => s.playing), 'player kept playing');
      // The scenario really happened: the dead link dropped traffic, the new one carried some.
      const delivered = (line) => Number(/up: received=\d+ delivered=(\d+)/.exec(line)?.[1]);
      const downed = (line) => Number(/up: .*? down=(\d+)/.exec(line)?.[1]);
      assert.ok(downed(linkStats[0]) > 0, `link 0 was dead while the sender still used it: ${linkStats[0]}`);
      assert.ok(delivered(linkStats[3]) > 100, `the added link carried traffic: ${linkStats[3]}`);
    } catch (e) {
      if (browser) console.error(browser.describe());
      if (sender) console.error(`srtla-send:\n  ${sender.lines.slice(-20).join('\n  ')}`);
      if (publisher) console.error(publisher.describe());
      if (gateway) console.error(gateway.describe());
      throw e;
    } finally {
      await cleanup.run();
    }
  },
);
