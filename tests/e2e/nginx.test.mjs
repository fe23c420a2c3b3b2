// End to end behind a standard cache: deploy/nginx/dropline.conf (nginx proxy_cache) in front of a
// live gateway. Proves that
//   - many identical concurrent blocking reloads through nginx reach the origin ONCE
//     (counted in the gateway's own request log) and all get the same playlist;
//   - parts and segments are served from the cache (X-Cache-Status: HIT), also reaching the
//     origin once;
//   - hls.js plays the stream through nginx (page, playlists and media all via nginx) with no
//     stall.

import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  Cleanup,
  LiveStream,
  freePort,
  launchBrowser,
  makeTempDir,
  percentile,
  repoRoot,
  sampleStats,
  shutdownAll,
  startNginx,
  waitForPlaying,
} from './helpers.mjs';

const STREAM = 'edge';
const CLIENTS = 20;
const SAMPLE_FOR_MS = 20_000;

after(shutdownAll);

/** deploy/nginx/dropline.conf with its three marked lines pointed at this test's origin, port, cache. */
function edgeConfig({ origin, port, cacheDir }) {
  let conf = readFileSync(path.join(repoRoot, 'deploy', 'nginx', 'dropline.conf'), 'utf8');
  const swap = (pattern, replacement) => {
    const matches = conf.match(new RegExp(pattern.source, 'gm')) || [];
    assert.equal(matches.length, 1, `deploy/nginx/dropline.conf: expected one ${pattern} line`);
    conf = conf.replace(new RegExp(pattern.source, 'm'), replacement);
  };
  swap(/^(\s*server )\S+;(\s*# origin)/, `$1${origin};$2`);
  swap(/^(\s*listen )\S+;(\s*# listen address)/, `$1127.0.0.1:${port};$2`);
  swap(/^(proxy_cache_path )\S+(\s*# cache folder)/, `$1${cacheDir}$2`);
  return conf;
}

/** (next MSN, parts already in it) of a media playlist: where the next part will go. */
function liveEdge(text) {
  const lines = text.split('\n');
  const seq = Number(lines.find((l) => l.startsWith('#EXT-X-MEDIA-SEQUENCE:')).split(':')[1]);
  const lastInf = lines.findLastIndex((l) => l.startsWith('#EXTINF:'));
  const complete = lines.filter((l) => l.startsWith('#EXTINF:')).length;
  const parts = lines.slice(lastInf + 1).filter((l) => l.startsWith('#EXT-X-PART:')).length;
  return { msn: seq + complete, parts };
}

/** Requests the gateway logged (at debug: tower_http, or its HTTP/1.1 fast path) for exactly `pathAndQuery`. */
function originRequests(logFile, pathAndQuery) {
  const needle = ` uri=${pathAndQuery} `;
  return readFileSync(logFile, 'utf8')
    .split('\n')
    .filter((l) => l.includes(needle) && l.includes('started processing request')).length;
}

async function get(url) {
  const started = Date.now();
  const res = await fetch(url, { cache: 'no-store', signal: AbortSignal.timeout(20_000) });
  const body = Buffer.from(await res.arrayBuffer());
  return { status: res.status, cache: res.headers.get('x-cache-status'), body, ms: Date.now() - started };
}

test(
  'nginx proxy_cache in front: blocking reloads collapse, media is cached, hls.js plays without stalls',
  { timeout: 240_000 },
  async () => {
    const cleanup = new Cleanup();
    const live = new LiveStream(STREAM);
    let nginx;
    let browser;
    try {
      // Debug request lines count what reaches the origin.
      const rustLog = 'info,tower_http=debug,gateway::http=debug';
      await live.start(cleanup, { env: { RUST_LOG: rustLog, NO_COLOR: '1' } });
      const { gateway } = live;
      const port = await freePort();
      const conf = edgeConfig({ origin: gateway.http.hostPort, port, cacheDir: makeTempDir('nginx-cache') });
      nginx = await startNginx({ httpConf: conf, port });
      cleanup.add(() => nginx.stop());
      const check = () => {
        live.check();
        nginx.check();
      };
      const edge = nginx.url;
      const media = `/${STREAM}/main`;

      // 1. CLIENTS identical blocking reloads for the part after next, all at once.
      const current = await (await fetch(`${gateway.httpUrl}${media}/playlist.m3u8`)).text();
      const { msn, parts } = liveEdge(current);
      const blocking = `${media}/playlist.m3u8?_HLS_msn=${msn}&_HLS_part=${parts + 1}`;
      const answers = await Promise.all(Array.from({ length: CLIENTS }, () => get(`${edge}${blocking}`)));
      check();
      await sleep(300); // let the gateway's log reach its file
      const statuses = answers.map((a) => a.status);
      const caches = answers.map((a) => a.cache);
      const waits = answers.map((a) => a.ms).sort((a, b) => a - b);
      console.log(
        `nginx collapse: ${CLIENTS} x ${blocking}: statuses ${[...new Set(statuses)]}, ` +
          `X-Cache-Status ${JSON.stringify(caches.reduce((m, c) => ({ ...m, [c]: (m[c] || 0) + 1 }), {}))}, ` +
          `answered after min ${waits[0]} ms p50 ${percentile(waits, 50)} ms max ${waits.at(-1)} ms`,
      );
      assert.deepEqual(new Set(statuses), new Set([200]), `all blocking reloads answered 200: ${statuses}`);
      assert.ok(
        answers.every((a) => a.body.equals(answers[0].body)),
        'every client got the same playlist',
      );
      assert.equal(caches.filter((c) => c === 'MISS').length, 1, `one MISS, the rest HIT: ${caches}`);
      assert.equal(originRequests(gateway.logFile, blocking), 1, `the origin saw ${blocking} once`);

      // 2. A segment and a part: the second fetch is a cache HIT; the origin saw each once.
      const playlist = (await get(`${edge}${media}/playlist.m3u8`)).body.toString();
      const segment = playlist.split('\n').find((l) => /^seg\d+\.m4s$/.test(l));
      const part = /#EXT-X-PART:.*URI="(part\d+\.m4s)"/.exec(playlist)[1];
      for (const object of [segment, part]) {
        const first = await get(`${edge}${media}/${object}`);
        const second = await get(`${edge}${media}/${object}`);
        assert.equal(first.status, 200, `${object}: ${first.status}`);
        assert.equal(second.cache, 'HIT', `${object} served from the cache the second time`);
        assert.ok(second.body.equals(first.body), `${object}: same bytes from the cache`);
        await sleep(200);
        assert.equal(originRequests(gateway.logFile, `${media}/${object}`), 1, `the origin saw ${object} once`);
      }

      // 3. hls.js through nginx: the page, the player, playlists and media all come via the edge.
      browser = await launchBrowser();
      cleanup.add(() => browser.close());
      const { page } = browser;
      await page.goto(`${edge}/?stream=${STREAM}`, { waitUntil: 'load', timeout: 30_000 });
      await waitForPlaying(page, { timeoutMs: 30_000, check });
      const samples = await sampleStats(page, { durationMs: SAMPLE_FOR_MS, intervalMs: 500, check });
      const last = samples.at(-1);
      const latencies = samples.map((s) => s.latencyMs).filter((x) => x !== null);
      const log = nginx.accessLog().split('\n').filter(Boolean);
      const playerLines = log.slice(log.findIndex((l) => l.includes(' /?stream=')));
      const tally = (re) => playerLines.filter((l) => re.test(l));
      console.log(
        `nginx play: latency end=${last.latencyMs} ms p50=${percentile(latencies, 50)} ms ` +
          `stalls=${last.stalls} fatal=${last.fatalCount} parts=${last.partCount}; via nginx: ` +
          `${tally(/_HLS_msn=/).length} blocking reloads, ${tally(/part\d+\.m4s /).length} part requests ` +
          `(${tally(/part\d+\.m4s \d+ HIT /).length} HIT)`,
      );
      assert.equal(last.canBlockReload, true, 'the playlist through nginx still offers CAN-BLOCK-RELOAD');
      assert.ok(last.partCount > 0, 'hls.js sees parts');
      assert.equal(last.fatalCount, 0, `no fatal hls.js errors: ${JSON.stringify(last.errors)}`);
      assert.equal(last.stalls, 0, `no stalls through nginx: ${JSON.stringify(last.stallLog)}`);
      assert.ok(samples.every((s) => s.playing), 'playing for the whole window');
      assert.ok(tally(/_HLS_msn=/).length > 0, 'hls.js made blocking reloads through nginx');
    } catch (e) {
      if (browser) console.error(browser.describe());
      if (nginx) {
        console.error(nginx.describe());
        console.error(`nginx access log (last lines):\n  ${nginx.accessLog().split('\n').slice(-30).join('\n  ')}`);
      }
      console.error(live.describe());
      throw e;
    } finally {
      await cleanup.run();
    }
  },
);
