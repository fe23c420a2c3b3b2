// Shared harness for the end-to-end tests: start the gateway and an ffmpeg SRT publisher, drive
// headless Chromium through playwright-core, and always clean up (even when a test fails or the
// gateway never becomes ready).
//
// Environment:
//   DROPLINE_BIN        gateway binary (default: target/debug/dropline)
//   DROPLINE_CHROMIUM   browser executable (default: /usr/bin/chromium)
//   DROPLINE_E2E_KEEP   set to 1 to keep temp dirs (browser profile, logs) for inspection

import { spawn } from 'node:child_process';
import { createRequire } from 'node:module';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync, createWriteStream } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import readline from 'node:readline';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';

export const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
export const webRoot = path.join(repoRoot, 'web');

const READY_TIMEOUT_MS = 60_000;
const STOP_GRACE_MS = 5_000;
const TAIL_LINES = 40;

// playwright-core is installed in web/node_modules (by `make deps` / `npm ci`), not at the repo root.
const requireFromWeb = createRequire(path.join(webRoot, 'package.json'));

// ---------------------------------------------------------------------------------------------
// Child-process bookkeeping: everything we spawn is killed when this process exits, however it
// exits, so a failing test never leaves a gateway or ffmpeg running.

const children = new Set();
const tempDirs = new Set();

function killAllSync() {
  for (const child of children) {
    if (child.exitCode === null && child.signalCode === null) {
      try {
        child.kill('SIGKILL');
      } catch {
        // already gone
      }
    }
  }
  children.clear();
  if (!process.env.DROPLINE_E2E_KEEP) {
    for (const dir of tempDirs) rmSync(dir, { recursive: true, force: true });
    tempDirs.clear();
  }
}
process.on('exit', killAllSync);
for (const sig of ['SIGINT', 'SIGTERM']) {
  process.once(sig, () => {
    killAllSync();
    process.exit(130);
  });
}

const browsers = new Set();

/**
 * Last-resort cleanup for `after()` hooks: closes every browser and kills every child still
 * running, so a test that timed out cannot keep the test file's process alive.
 */
export async function shutdownAll() {
  await Promise.all([...browsers].map((b) => b.close().catch(() => {})));
  browsers.clear();
  killAllSync();
}

export function makeTempDir(prefix) {
  const dir = mkdtempSync(path.join(os.tmpdir(), `dropline-${prefix}-`));
  tempDirs.add(dir);
  return dir;
}

function removeTempDir(dir) {
  if (process.env.DROPLINE_E2E_KEEP) return;
  rmSync(dir, { recursive: true, force: true });
  tempDirs.delete(dir);
}

/** Keeps the last `max` lines of a stream, and optionally tees everything to a log file. */
class Tail {
  constructor(max = TAIL_LINES, logFile = null) {
    this.max = max;
    this.lines = [];
    this.log = logFile ? createWriteStream(logFile) : null;
    this.logFile = logFile;
  }
  push(line) {
    this.lines.push(line);
    if (this.lines.length > this.max) this.lines.shift();
    if (this.log) this.log.write(`${line}\n`);
  }
  text() {
    return this.lines.map((l) => `    | ${l}`).join('\n');
  }
  close() {
    if (this.log) this.log.end();
  }
}

function exited(child) {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => child.once('exit', () => resolve()));
}

/** Stops `child` with `signal`; one that ignores SIGTERM for STOP_GRACE_MS gets SIGKILL. */
async function stopChild(child, name, signal = 'SIGTERM') {
  if (!child || child.exitCode !== null || child.signalCode !== null) {
    children.delete(child);
    return;
  }
  child.kill(signal);
  const done = await Promise.race([exited(child).then(() => true), sleep(STOP_GRACE_MS).then(() => false)]);
  if (!done) {
    console.error(`${name} did not exit within ${STOP_GRACE_MS} ms of SIGTERM; sending SIGKILL`);
    child.kill('SIGKILL');
    await exited(child);
  }
  children.delete(child);
}

// ---------------------------------------------------------------------------------------------
// Gateway

/**
 * Parses `dropline ready srt=IP:PORT http=IP:PORT [NAME=ADDR ...]` into { srt, http, ... }.
 * Returns null for any other line.
 */
export function parseReadyLine(line) {
  const m = /^dropline ready(?:\s+(.*))?$/.exec(line.trim());
  if (!m) return null;
  const addrs = {};
  for (const pair of (m[1] || '').split(/\s+/).filter(Boolean)) {
    const eq = pair.indexOf('=');
    if (eq > 0) addrs[pair.slice(0, eq)] = pair.slice(eq + 1);
  }
  return addrs;
}

/** "0.0.0.0:8080" / "[::]:8080" -> an address a local client can connect to. */
export function connectableAddr(addr) {
  const m = /^(.*):(\d+)$/.exec(addr);
  if (!m) throw new Error(`not an IP:PORT address: ${addr}`);
  let host = m[1];
  if (host === '0.0.0.0') host = '127.0.0.1';
  if (host === '[::]') host = '[::1]';
  return { host: host.replace(/^\[|\]$/g, ''), port: Number(m[2]), hostPort: `${host}:${m[2]}` };
}

export function gatewayBinary() {
  const bin = process.env.DROPLINE_BIN || path.join(repoRoot, 'target', 'debug', 'dropline');
  return path.isAbsolute(bin) ? bin : path.resolve(repoRoot, bin);
}

/**
 * Starts `dropline serve` on loopback ports chosen by the OS (or on `listen`'s addresses, e.g. those of
 * a gateway that stopped) and resolves once it prints its ready line. Rejects (after killing the
 * process) if it exits first or is not ready within `timeoutMs`.
 *
 * @returns {Promise<{proc, addrs, srt, http, httpUrl, stderr: Tail, logFile, stop: () => Promise<void>,
 *   kill: () => Promise<void>}>}
 */
export async function startGateway({
  extraArgs = [],
  timeoutMs = READY_TIMEOUT_MS,
  env = {},
  listen = { srt: '127.0.0.1:0', http: '127.0.0.1:0' },
} = {}) {
  const bin = gatewayBinary();
  if (!existsSync(bin)) {
    throw new Error(`gateway binary not found at ${bin} (run \`make build\` or set DROPLINE_BIN)`);
  }
  const args = [
    'serve',
    '--srt-listen',
    listen.srt,
    '--http-listen',
    listen.http,
    '--web-root',
    webRoot,
    ...extraArgs,
  ];
  const logDir = makeTempDir('gateway');
  const logFile = path.join(logDir, 'stderr.log');
  const stderr = new Tail(TAIL_LINES, logFile);
  const stdout = new Tail(TAIL_LINES);

  const proc = spawn(bin, args, {
    cwd: repoRoot,
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { RUST_BACKTRACE: '1', ...process.env, ...env },
  });
  children.add(proc);
  readline.createInterface({ input: proc.stderr }).on('line', (l) => stderr.push(l));
  const lines = readline.createInterface({ input: proc.stdout });

  const describe = () => {
    tempDirs.delete(logDir); // a failure message points at this log: keep it
    return (
      `command: ${bin} ${args.join(' ')}\n  stdout (last lines):\n${stdout.text() || '    | (none)'}\n` +
      `  stderr (last lines, full log ${logFile}):\n${stderr.text() || '    | (none)'}`
    );
  };

  let addrs;
  try {
    addrs = await new Promise((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`gateway printed no "dropline ready" line within ${timeoutMs} ms`)),
        timeoutMs,
      );
      proc.once('error', (e) => {
        clearTimeout(timer);
        reject(new Error(`could not start gateway: ${e.message}`));
      });
      proc.once('exit', (code, signal) => {
        clearTimeout(timer);
        reject(new Error(`gateway exited before it was ready (code ${code}, signal ${signal})`));
      });
      lines.on('line', (line) => {
        stdout.push(line);
        const parsed = parseReadyLine(line);
        if (parsed) {
          clearTimeout(timer);
          resolve(parsed);
        }
      });
    });
  } catch (e) {
    // Give stderr a moment to drain so the tail shows why it died.
    await Promise.race([exited(proc), sleep(200)]);
    await stopChild(proc, 'gateway');
    stderr.close();
    e.message = `${e.message}\n  ${describe()}`;
    throw e;
  }
  // Keep echoing any later stdout into the tail (the ready line is printed once).
  lines.on('line', (line) => stdout.push(line));

  for (const key of ['srt', 'http']) {
    if (!addrs[key]) throw new Error(`ready line has no ${key}= address\n  ${describe()}`);
  }
  const http = connectableAddr(addrs.http);
  const srt = connectableAddr(addrs.srt);
  let stopped = false;
  const end = async (signal) => {
    if (stopped) return;
    stopped = true;
    await stopChild(proc, 'gateway', signal);
    stderr.close();
  };
  return {
    proc,
    addrs,
    srt,
    http,
    httpUrl: `http://${http.hostPort}`,
    stderr,
    logFile,
    describe,
    /** Throws if the gateway has exited (for polling loops). */
    check() {
      if (!stopped && (proc.exitCode !== null || proc.signalCode !== null)) {
        throw new Error(
          `gateway exited (code ${proc.exitCode}, signal ${proc.signalCode})\n  ${describe()}`,
        );
      }
    },
    stop: () => end('SIGTERM'),
    /** SIGKILL: a crash, nothing flushed or closed by the gateway itself. */
    kill: () => end('SIGKILL'),
  };
}

// ---------------------------------------------------------------------------------------------
// ffmpeg SRT publisher

/**
 * Spawns `cmd` with its stderr kept in a tail (and the process stopped by `shutdownAll`), and
 * tracks how it ended: `exitInfo()` is null while it runs, else `{code, signal}` or `{error}`.
 */
function spawnTracked(cmd, args) {
  const stderr = new Tail(TAIL_LINES);
  const proc = spawn(cmd, args, { stdio: ['ignore', 'ignore', 'pipe'] });
  children.add(proc);
  readline.createInterface({ input: proc.stderr }).on('line', (l) => stderr.push(l));
  let info = null;
  proc.once('exit', (code, signal) => {
    info = { code, signal };
  });
  proc.once('error', (e) => {
    info = { error: e.message };
  });
  return { proc, stderr, exitInfo: () => info };
}

/**
 * Publishes a 640x360@30 test pattern (H.264, 1 s GOP, `bFrames` B-frames between references: none
 * by default) and a 440 Hz tone (AAC) as MPEG-TS over SRT with stream id `publish:NAME`. ffmpeg's
 * `latency` option is in microseconds.
 */
export function startPublisher({ srt, name = 'e2e', latencyMs = 120, extraInput = [], bFrames = 0 } = {}) {
  const url = `srt://${srt.hostPort}?streamid=publish:${name}&latency=${latencyMs * 1000}`;
  const args = [
    '-hide_banner',
    '-loglevel',
    'error',
    '-nostdin',
    '-re',
    '-f',
    'lavfi',
    '-i',
    'testsrc2=size=640x360:rate=30',
    '-f',
    'lavfi',
    '-i',
    'sine=frequency=440:sample_rate=48000',
    ...extraInput,
    '-c:v',
    'libx264',
    '-preset',
    'veryfast',
    '-tune',
    'zerolatency',
    '-g',
    '30',
    '-bf',
    String(bFrames),
    '-pix_fmt',
    'yuv420p',
    '-c:a',
    'aac',
    '-b:a',
    '96k',
    '-f',
    'mpegts',
    url,
  ];
  const { proc, stderr, exitInfo } = spawnTracked('ffmpeg', args);
  let stopped = false;
  const describe = () =>
    `ffmpeg publisher ${url}: ${exitInfo() ? `exited ${JSON.stringify(exitInfo())}` : 'running'}\n` +
    `${stderr.text() || '    | (no stderr)'}`;
  return {
    proc,
    url,
    stderr,
    describe,
    /** null while running, else how it ended */
    exitInfo,
    /** Throws if ffmpeg has exited (for polling loops). */
    check() {
      if (!stopped && exitInfo()) throw new Error(`ffmpeg publisher died: ${describe()}`);
    },
    async stop() {
      if (stopped) return;
      stopped = true;
      await stopChild(proc, 'ffmpeg');
    },
  };
}

// ---------------------------------------------------------------------------------------------
// HTTP polling

async function fetchWithTimeout(url, ms = 5_000) {
  const ctrl = new AbortController();
  const timer = setTimeout(() => ctrl.abort(), ms);
  try {
    return await fetch(url, { signal: ctrl.signal, cache: 'no-store' });
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Waits until /api/v1/streams lists `name` and /NAME/index.m3u8 answers 200.
 * `check()` may throw to abort early (e.g. when the publisher died).
 */
export async function waitForStream(httpUrl, name, { timeoutMs = 30_000, check = () => {} } = {}) {
  const deadline = Date.now() + timeoutMs;
  let last = 'no answer yet';
  while (Date.now() < deadline) {
    check();
    try {
      const res = await fetchWithTimeout(`${httpUrl}/api/v1/streams`);
      if (!res.ok) {
        last = `GET /api/v1/streams: HTTP ${res.status}`;
      } else {
        const body = await res.json();
        const names = (body.streams || []).map((s) => s.name);
        if (!names.includes(name)) {
          last = `GET /api/v1/streams lists ${JSON.stringify(names)}`;
        } else {
          const pl = await fetchWithTimeout(`${httpUrl}/${encodeURIComponent(name)}/index.m3u8`);
          const text = await pl.text();
          if (pl.ok && text.startsWith('#EXTM3U')) return text;
          last = `GET /${name}/index.m3u8: HTTP ${pl.status} ${text.slice(0, 200)}`;
        }
      }
    } catch (e) {
      last = `${e.name}: ${e.message}`;
    }
    await sleep(250);
  }
  throw new Error(`stream "${name}" not available within ${timeoutMs} ms (last: ${last})`);
}

/**
 * A gateway plus an ffmpeg publisher for one stream, as most end-to-end tests need them.
 * Create it before `try`, so that `describe()` can report whatever stage was reached on failure.
 */
export class LiveStream {
  constructor(name) {
    this.name = name;
    this.gateway = undefined;
    this.publisher = undefined;
    this.check = () => {
      this.gateway?.check();
      this.publisher?.check();
    };
  }

  /**
   * Starts both (registered with `cleanup`); resolves with the multivariant playlist once it plays.
   * `extraArgs`, `env` and `listen` are passed to the gateway, `bFrames` to the publisher. Called
   * again after `gateway.kill()`/`stop()`, it starts them anew (e.g. on the old `listen` addresses).
   */
  async start(cleanup, { extraArgs, env = {}, listen, bFrames = 0 } = {}) {
    this.gateway = await startGateway({ extraArgs, env, listen });
    cleanup.add(() => this.gateway.stop());
    this.publisher = startPublisher({ srt: this.gateway.srt, name: this.name, latencyMs: 120, bFrames });
    cleanup.add(() => this.publisher.stop());
    return waitForStream(this.gateway.httpUrl, this.name, { timeoutMs: 30_000, check: this.check });
  }

  describe() {
    const lines = [];
    if (this.publisher) lines.push(this.publisher.describe());
    if (this.gateway) lines.push(`gateway:\n  ${this.gateway.describe()}`);
    return lines.join('\n');
  }
}

// ---------------------------------------------------------------------------------------------
// Browser

export function chromiumPath() {
  return process.env.DROPLINE_CHROMIUM || '/usr/bin/chromium';
}

/**
 * Launches headless Chromium with a fresh profile. playwright-core refuses `--user-data-dir` in
 * `args` (it manages the profile itself), so the fresh directory is passed the supported way:
 * launchPersistentContext(userDataDir, …).
 *
 * @returns {Promise<{context, page, console: string[], close: () => Promise<void>}>}
 */
export async function launchBrowser({ viewport = { width: 1280, height: 720 } } = {}) {
  let chromium;
  try {
    ({ chromium } = requireFromWeb('playwright-core'));
  } catch (e) {
    throw new Error(`playwright-core not installed in web/node_modules (run \`make deps\`): ${e.message}`);
  }
  const exe = chromiumPath();
  if (!existsSync(exe)) throw new Error(`chromium not found at ${exe} (run \`make deps\` or set DROPLINE_CHROMIUM)`);
  const userDataDir = makeTempDir('chromium');
  const context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: exe,
    headless: true,
    viewport,
    timeout: 60_000,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--autoplay-policy=no-user-gesture-required',
    ],
  });
  const page = context.pages()[0] || (await context.newPage());
  const consoleLines = [];
  const keep = (l) => {
    consoleLines.push(l);
    if (consoleLines.length > 200) consoleLines.shift();
  };
  page.on('console', (m) => keep(`[console.${m.type()}] ${m.text()}`));
  page.on('pageerror', (e) => keep(`[pageerror] ${e.message}`));
  page.on('requestfailed', (r) => keep(`[requestfailed] ${r.url()} ${r.failure()?.errorText ?? ''}`));
  let closed = false;
  const handle = {
    context,
    page,
    console: consoleLines,
    /** The last console lines, for a failure report. */
    describe() {
      return `browser console (last lines):\n  ${consoleLines.slice(-30).join('\n  ')}`;
    },
    async close() {
      if (closed) return;
      closed = true;
      browsers.delete(handle);
      await context.close().catch(() => {});
      removeTempDir(userDataDir);
    },
  };
  browsers.add(handle);
  return handle;
}

/**
 * window.droplineStats() from the page, or null if the player has not defined it yet.
 * `fn` names another window function with the same contract (e.g. 'shakaStats').
 */
export async function readStats(page, timeoutMs = 10_000, fn = 'droplineStats') {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`page did not answer ${fn}() within ${timeoutMs} ms`)), timeoutMs);
  });
  try {
    return await Promise.race([
      page.evaluate((name) => (typeof window[name] === 'function' ? window[name]() : null), fn),
      timeout,
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/** Waits until the page reports playing with currentTime > 0; includes the last stats on timeout. */
export async function waitForPlaying(page, { timeoutMs = 30_000, check = () => {}, statsFn } = {}) {
  const deadline = Date.now() + timeoutMs;
  let stats = null;
  while (Date.now() < deadline) {
    check();
    stats = await readStats(page, undefined, statsFn);
    if (stats && stats.playing && stats.currentTime > 0) return stats;
    await sleep(250);
  }
  throw new Error(`player not playing within ${timeoutMs} ms; last stats: ${JSON.stringify(stats)}`);
}

/** Samples droplineStats() every `intervalMs` for `durationMs`. */
export async function sampleStats(page, { durationMs, intervalMs = 500, check = () => {}, statsFn }) {
  const samples = [];
  const end = Date.now() + durationMs;
  while (Date.now() < end) {
    check();
    const s = await readStats(page, undefined, statsFn);
    samples.push({ at: Date.now(), ...s });
    await sleep(intervalMs);
  }
  return samples;
}

/**
 * Counts what the player asks the gateway for, per rendition (the path segment before the object:
 * `main`, `audio`): playlists, blocking playlist reloads, parts and segments.
 */
export function countRequests(page) {
  const counts = {};
  page.on('request', (r) => {
    const u = new URL(r.url());
    const [rendition, object] = u.pathname.split('/').slice(-2);
    if (!/^(playlist\.m3u8|part\d+\.m4s|seg\d+\.m4s|init\d+\.mp4)$/.test(object)) return;
    const c = (counts[rendition] ??= { blocking: 0, playlists: 0, parts: 0, segments: 0, inits: 0 });
    if (object.endsWith('.m3u8')) {
      c.playlists += 1;
      if (u.searchParams.has('_HLS_msn')) c.blocking += 1;
    } else if (object.startsWith('part')) c.parts += 1;
    else if (object.startsWith('seg')) c.segments += 1;
    else c.inits += 1;
  });
  return counts;
}

/** Asserts the player loaded the separate audio rendition: its playlist, init and parts. */
export function assertAudioRenditionLoaded(assert, counts) {
  const a = counts.audio;
  assert.ok(a, `the player never asked for the audio rendition: ${JSON.stringify(counts)}`);
  assert.ok(a.playlists > 0 && a.inits > 0, `audio playlist and init expected: ${JSON.stringify(counts)}`);
  assert.ok(a.parts > 0, `audio parts expected (LL-HLS per rendition): ${JSON.stringify(counts)}`);
  assert.ok(a.blocking > 0, `audio playlist blocking reloads expected: ${JSON.stringify(counts)}`);
}

/** Every fifth sample (2.5 s apart at the default interval) and the last, for a failure report. */
export function describeSamples(samples) {
  const brief = samples
    .filter((_, i) => i % 5 === 0 || i === samples.length - 1)
    .map((s) => `lat=${s.latencyMs} buf=${s.bufferMs} stalls=${s.stalls} playing=${s.playing}`);
  const warnings = samples.at(-1)?.hlsWarnings ?? [];
  return (
    `samples (every 2.5 s):\n  ${brief.join('\n  ')}\n` +
    `hls.js warnings (last ${warnings.length}):\n  ${warnings.join('\n  ')}`
  );
}

/** Nearest-rank percentile of a numeric array (p in 0..100). */
export function percentile(values, p) {
  const v = values.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (v.length === 0) return null;
  const rank = Math.min(v.length - 1, Math.max(0, Math.ceil((p / 100) * v.length) - 1));
  return v[rank];
}

/** Runs async cleanups in reverse order, never throwing. */
export class Cleanup {
  constructor() {
    this.fns = [];
  }
  add(fn) {
    this.fns.push(fn);
    return fn;
  }
  async run() {
    while (this.fns.length) {
      const fn = this.fns.pop();
      try {
        await fn();
      } catch (e) {
        console.error(`cleanup failed: ${e.message}`);
      }
    }
  }
}

// ---------------------------------------------------------------------------------------------
// nginx (a standard HTTP cache in front of the gateway)

/** A TCP port that was free on 127.0.0.1 a moment ago (nginx cannot listen on port 0). */
export async function freePort() {
  const server = net.createServer();
  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', resolve);
  });
  const { port } = server.address();
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/**
 * Runs nginx in the foreground (not daemonised; killed with everything else) with a temp prefix
 * holding its pid file, logs and temp folders. `httpConf` goes into the `http {}` block and must
 * listen on 127.0.0.1:`port`. Resolves once that port accepts connections.
 * The access log records, for every request: the time it ended, URI, status,
 * `$upstream_cache_status`, how long it took and the upstream address (`-` when served from the
 * cache alone).
 */
export async function startNginx({ httpConf, port, timeoutMs = 10_000 }) {
  const dir = makeTempDir('nginx');
  const conf = path.join(dir, 'nginx.conf');
  const accessLog = path.join(dir, 'access.log');
  const errorLog = path.join(dir, 'error.log');
  const temp = (name) => path.join(dir, name);
  writeFileSync(
    conf,
    [
      'daemon off;',
      // Workers run as this user (root would otherwise drop to nobody, who cannot use `dir`).
      `user ${os.userInfo().username};`,
      'worker_processes 1;',
      `pid ${temp('nginx.pid')};`,
      `error_log ${errorLog} warn;`,
      'events { worker_connections 1024; }',
      'http {',
      '  include /etc/nginx/mime.types;',
      `  log_format cache '$msec $request_uri $status $upstream_cache_status rt=$request_time upstream=$upstream_addr';`,
      `  access_log ${accessLog} cache;`,
      `  client_body_temp_path ${temp('body')};`,
      `  proxy_temp_path ${temp('proxy')};`,
      `  fastcgi_temp_path ${temp('fastcgi')};`,
      `  uwsgi_temp_path ${temp('uwsgi')};`,
      `  scgi_temp_path ${temp('scgi')};`,
      httpConf,
      '}',
      '',
    ].join('\n'),
  );
  const { proc, stderr, exitInfo } = spawnTracked('nginx', ['-p', dir, '-c', conf, '-e', errorLog]);
  const readLog = (file) => (existsSync(file) ? readFileSync(file, 'utf8') : '');
  const describe = () => {
    tempDirs.delete(dir); // a failure message points at these files: keep them
    return (
      `nginx -p ${dir} -c ${conf}: ${exitInfo() ? `exited ${JSON.stringify(exitInfo())}` : 'running'}\n` +
      `${stderr.text()}\n  error.log (last lines):\n${readLog(errorLog).split('\n').slice(-20).join('\n')}`
    );
  };
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (exitInfo()) throw new Error(`nginx exited at startup: ${describe()}`);
    const open = await new Promise((resolve) => {
      const s = net.connect(port, '127.0.0.1', () => {
        s.destroy();
        resolve(true);
      });
      s.once('error', () => resolve(false));
    });
    if (open) break;
    if (Date.now() > deadline) throw new Error(`nginx not listening on ${port} within ${timeoutMs} ms: ${describe()}`);
    await sleep(50);
  }
  let stopped = false;
  return {
    proc,
    dir,
    url: `http://127.0.0.1:${port}`,
    describe,
    accessLog: () => readLog(accessLog),
    check() {
      if (!stopped && exitInfo()) throw new Error(`nginx died: ${describe()}`);
    },
    async stop() {
      if (stopped) return;
      stopped = true;
      // SIGQUIT: graceful stop of master and workers.
      proc.kill('SIGQUIT');
      await Promise.race([exited(proc), sleep(STOP_GRACE_MS)]);
      await stopChild(proc, 'nginx');
    },
  };
}
