// Minimal Shaka Player page: a second LL-HLS client, independent of hls.js, used by
// tests/e2e/shaka.test.mjs. Plays /NAME/index.m3u8 for ?stream=NAME (default "demo") with
// streaming.lowLatencyMode on.
//
// window.shakaStats() returns a plain object:
//   playing        the video is advancing (not paused, not buffering, readyState >= 3)
//   currentTime    video.currentTime (s)
//   stalls         buffering episodes + <video> 'waiting' events after the first 'playing'
//   latencyMs      Date.now() - player.getPlayheadTimeAsDate() (PROGRAM-DATE-TIME), or null
//   errors         Shaka errors, oldest first ({code, category, severity, message})
'use strict';

const MAX_KEPT = 50;
const video = document.getElementById('video');
const statusEl = document.getElementById('status');
const params = new URLSearchParams(location.search);
const stream = params.get('stream') || 'demo';
const src = `/${encodeURIComponent(stream)}/index.m3u8`;
const t0 = performance.now();

const state = {
  player: null,
  loaded: false,
  firstPlayingAtMs: null,
  buffering: false,
  bufferingEvents: 0, // Shaka 'buffering' {buffering: true} after the first 'playing'
  waitingEvents: 0, // <video> 'waiting' after the first 'playing'
  stallLog: [],
  errors: [],
  errorCount: 0,
};

// Buffered ranges per track (s, 3 decimals): why a stall happened (a hole in audio or video).
function bufferedRanges() {
  const p = state.player;
  if (!p) return null;
  const info = p.getBufferedInfo();
  const fmt = (ranges) => ranges.map((r) => `${r.start.toFixed(3)}-${r.end.toFixed(3)}`).join(',');
  return { video: fmt(info.video), audio: fmt(info.audio) };
}

function note(list, item) {
  list.push(item);
  if (list.length > MAX_KEPT) list.shift();
}

function onError(err) {
  // shaka.util.Error or anything thrown by load()
  const e = err && err.detail ? err.detail : err;
  state.errorCount += 1;
  note(state.errors, {
    t: Math.round(performance.now() - t0),
    code: e && e.code,
    category: e && e.category,
    severity: e && e.severity,
    message: String((e && e.message) || e),
  });
  statusEl.textContent = `error ${e && e.code}: ${(e && e.message) || e}`;
}

video.addEventListener('playing', () => {
  if (state.firstPlayingAtMs === null) state.firstPlayingAtMs = Math.round(performance.now() - t0);
});
video.addEventListener('waiting', () => {
  if (state.firstPlayingAtMs === null) return;
  state.waitingEvents += 1;
  note(state.stallLog, {
    t: Math.round(performance.now() - t0),
    kind: 'waiting',
    currentTime: video.currentTime,
    buffered: bufferedRanges(),
  });
});

function bufferAheadMs() {
  const b = video.buffered;
  for (let i = 0; i < b.length; i += 1) {
    if (b.start(i) <= video.currentTime + 0.05 && video.currentTime <= b.end(i)) {
      return Math.round((b.end(i) - video.currentTime) * 1000);
    }
  }
  return 0;
}

function latencyMs() {
  const p = state.player;
  if (!p || typeof p.getPlayheadTimeAsDate !== 'function') return null;
  const d = p.getPlayheadTimeAsDate();
  if (!d || !Number.isFinite(d.getTime())) return null;
  return Date.now() - d.getTime();
}

window.shakaStats = () => {
  const p = state.player;
  const s = p ? p.getStats() : null;
  return {
    shakaVersion: window.shaka ? shaka.Player.version : null,
    supported: window.shaka ? shaka.Player.isBrowserSupported() : false,
    loaded: state.loaded,
    live: p ? p.isLive() : null,
    lowLatencyMode: p ? p.getConfiguration().streaming.lowLatencyMode : null,
    playing:
      state.firstPlayingAtMs !== null && !video.paused && !video.ended && !state.buffering && video.readyState >= 3,
    firstPlayingAtMs: state.firstPlayingAtMs,
    currentTime: video.currentTime,
    bufferMs: bufferAheadMs(),
    latencyMs: latencyMs(),
    shakaLiveLatency: s ? s.liveLatency : null,
    stalls: state.bufferingEvents + state.waitingEvents,
    bufferingEvents: state.bufferingEvents,
    waitingEvents: state.waitingEvents,
    stallsDetected: s ? s.stallsDetected : null,
    gapsJumped: s ? s.gapsJumped : null,
    stallLog: state.stallLog.slice(),
    errorCount: state.errorCount,
    errors: state.errors.slice(),
    videoWidth: video.videoWidth,
    videoHeight: video.videoHeight,
    droppedFrames: s ? s.droppedFrames : null,
    decodedFrames: s ? s.decodedFrames : null,
  };
};

async function main() {
  if (!window.shaka) {
    onError(new Error('shaka-player.compiled.js did not load (is web/node_modules installed?)'));
    return;
  }
  shaka.polyfill.installAll();
  if (!shaka.Player.isBrowserSupported()) {
    onError(new Error('Shaka Player: browser not supported'));
    return;
  }
  const player = new shaka.Player();
  state.player = player;
  await player.attach(video);
  player.configure({ streaming: { lowLatencyMode: true } });
  player.addEventListener('error', onError);
  player.addEventListener('buffering', (ev) => {
    state.buffering = ev.buffering;
    if (ev.buffering && state.firstPlayingAtMs !== null) {
      state.bufferingEvents += 1;
      note(state.stallLog, {
        t: Math.round(performance.now() - t0),
        kind: 'buffering',
        currentTime: video.currentTime,
        buffered: bufferedRanges(),
      });
    }
  });
  statusEl.textContent = `Shaka ${shaka.Player.version}: loading ${src}`;
  try {
    await player.load(src);
    state.loaded = true;
    statusEl.textContent = `Shaka ${shaka.Player.version}: playing ${src} (low-latency mode)`;
    video.play().catch(() => {});
  } catch (e) {
    onError(e);
  }
  setInterval(() => {
    if (!state.loaded) return;
    const l = latencyMs();
    statusEl.textContent =
      `Shaka ${shaka.Player.version} ${src}  latency ${l === null ? '–' : `${l} ms`}  ` +
      `buffer ${bufferAheadMs()} ms  stalls ${state.bufferingEvents + state.waitingEvents}  errors ${state.errorCount}`;
  }, 500);
}

main();
