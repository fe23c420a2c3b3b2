// Timing and deduplication: the pure CueSchedule, then attachOverlay driven by a fake hls.js and a
// video element on a virtual clock (frames presented one at a time, timers from node:test's mock).

import { test, mock } from 'node:test';
import assert from 'node:assert/strict';
import { CueSchedule, attachOverlay, parseCue } from '../dropline-overlay.mjs';
import { FakeHls, FakeVideo, cueId3, cueJson, dateRange, details } from './fixtures.mjs';

const EMSG = 'https://aomedia.org/emsg/ID3';
const FRAME = 1 / 30;

const cue = (o) => parseCue(cueJson(o));

test('schedule: fires at its time, once per id, in media-time order', () => {
  const s = new CueSchedule();
  assert.equal(s.offer(cue({ id: 'b' }), 12, 'daterange'), 'added');
  assert.equal(s.offer(cue({ id: 'a' }), 11, 'emsg'), 'added');
  s.offer(cue({ id: 'c' }), 11, 'emsg');
  assert.deepEqual(s.poll(10.9), []);
  assert.equal(s.nextTime(), 11);
  assert.deepEqual(s.poll(11.05).map((d) => [d.cue.id, d.late]), [['a', false], ['c', false]]);
  assert.deepEqual(s.poll(11.99, 0.02).map((d) => [d.cue.id, d.late]), [['b', false]]);
  assert.equal(s.offer(cue({ id: 'a' }), 11, 'daterange'), 'done');
  assert.deepEqual(s.poll(20), []);
});

test('schedule: the emsg time refines a DATERANGE time, never the other way round', () => {
  const s = new CueSchedule();
  s.offer(cue({ id: 'x' }), 10.2, 'daterange');
  assert.equal(s.offer(cue({ id: 'x' }), 10.0, 'emsg'), 'updated');
  assert.equal(s.offer(cue({ id: 'x' }), 10.3, 'daterange'), 'unchanged');
  assert.equal(s.timeOf('x'), 10.0);
  const [d] = s.poll(10.0);
  assert.equal(d.carriage, 'daterange', 'the carriage that delivered it first is reported');
});

test('schedule: joined after the start fires late inside the duration, expired never fires', () => {
  const s = new CueSchedule({ lateToleranceS: 0.1 });
  s.offer(cue({ id: 'inside', durationMs: 30_000 }), 100, 'emsg');
  s.offer(cue({ id: 'over', durationMs: 5_000 }), 100, 'emsg');
  s.offer(cue({ id: 'open' }), 50, 'emsg'); // unknown duration: still in effect
  s.offer(cue({ id: 'point', durationMs: 0 }), 100, 'emsg');
  const fired = s.poll(110);
  assert.deepEqual(fired.map((d) => [d.cue.id, d.late]), [['open', true], ['inside', true]]);
  assert.equal(s.done.get('over'), 'expired');
  assert.equal(s.done.get('point'), 'expired');
  assert.equal(s.offer(cue({ id: 'over', durationMs: 5_000 }), 100, 'daterange'), 'done');
});

test('schedule: a cancelled cue never fires, whichever carriage brings it later', () => {
  const s = new CueSchedule();
  s.offer(cue({ id: 'c' }), 5, 'daterange');
  assert.equal(s.cancel('c'), true);
  assert.equal(s.offer(cue({ id: 'c' }), 5, 'emsg'), 'done');
  assert.deepEqual(s.poll(6), []);
  assert.equal(s.cancel('never-seen'), false);
  assert.equal(s.offer(cue({ id: 'never-seen' }), 5, 'emsg'), 'done');
});

test('schedule: bounded pending set and id memory; non-finite times rejected', () => {
  const s = new CueSchedule({ maxPending: 2, rememberIds: 2 });
  assert.equal(s.offer(cue({ id: 'a' }), NaN, 'emsg'), 'rejected');
  s.offer(cue({ id: 'a' }), 1, 'emsg');
  s.offer(cue({ id: 'b' }), 2, 'emsg');
  assert.equal(s.offer(cue({ id: 'c' }), 3, 'emsg'), 'rejected');
  s.poll(5);
  s.cancel('d');
  assert.deepEqual([...s.done.keys()], ['b', 'd']);
  assert.deepEqual(s.poll(NaN), []);
});

/** Attaches to fakes; collects every dispatched event. */
function harness(opts = {}, videoOpts = {}) {
  const hls = new FakeHls();
  const video = new FakeVideo(videoOpts);
  const logs = [];
  const overlay = attachOverlay(hls, video, { log: (m) => logs.push(m), now: () => video.wallMs, ...opts });
  const events = [];
  for (const type of ['offer', 'stage', 'card', 'soldout', 'custom', 'cue']) {
    overlay.addEventListener(type, (e) => events.push({ ...e.detail, event: type }));
  }
  const emsg = (json, pts, frag = {}) =>
    hls.trigger('hlsFragParsingMetadata', { frag, samples: [{ pts, dts: pts, duration: Infinity, type: EMSG, data: cueId3(json) }] });
  const playlist = (ranges, o) => hls.trigger('hlsLevelUpdated', { details: details(ranges, o), level: 0 });
  return { hls, video, overlay, events, logs, emsg, playlist };
}

test('overlay: an emsg cue fires on the frame nearest its pts (≤ half a frame off)', () => {
  const h = harness({}, { currentTime: 100 });
  h.video.play(0.5); // frames flow
  h.emsg(cueJson({ id: 'o1', durationMs: 30_000, payload: { sku: 'tee' } }), 101.51);
  h.video.play(0.9);
  assert.equal(h.events.length, 0, 'not before its time');
  h.video.play(0.2);
  const offers = h.events.filter((e) => e.event === 'offer');
  assert.equal(offers.length, 1);
  const [o] = offers;
  assert.equal(o.id, 'o1');
  assert.equal(o.state, 'open');
  assert.equal(o.kind, 'offer-open');
  assert.deepEqual(o.payload, { sku: 'tee' });
  assert.equal(o.mediaTime, 101.51);
  assert.equal(o.carriage, 'emsg');
  assert.equal(o.late, false);
  assert.ok(Math.abs(o.firedAt - o.mediaTime) <= FRAME / 2 + 1e-9, `error ${(o.firedAt - o.mediaTime) * 1000} ms`);
  assert.equal(h.events.filter((e) => e.event === 'cue').length, 1, "and once as 'cue'");
  assert.deepEqual(h.overlay.fired.map((d) => d.id), ['o1']);
});

test('overlay: every kind maps to its event; offer-close carries state "closed"', () => {
  const h = harness({}, { currentTime: 0 });
  h.video.play(0.1);
  const kinds = ['offer-open', 'offer-close', 'stock-stage', 'product-card', 'sold-out', 'custom'];
  kinds.forEach((kind, i) => h.emsg(cueJson({ id: `k${i}`, kind }), 1 + i * 0.1));
  h.video.play(2);
  const typed = h.events.filter((e) => e.event !== 'cue');
  assert.deepEqual(typed.map((e) => [e.event, e.state]), [
    ['offer', 'open'],
    ['offer', 'closed'],
    ['stage', undefined],
    ['card', undefined],
    ['soldout', undefined],
    ['custom', undefined],
  ]);
});

test('overlay: DATERANGE START-DATE fires at the PROGRAM-DATE-TIME-mapped media time', () => {
  const h = harness({}, { currentTime: 104 });
  h.video.play(0.1);
  // Fragments start at media 100 with PDT 10:03:00.000; the cue starts at 10:03:05.500 -> 105.5.
  const json = cueJson({ id: 'stage-2', kind: 'stock-stage', start: '2026-11-26T10:03:05.500Z', payload: { stage: 'under 50' } });
  h.playlist([dateRange(json)]);
  assert.deepEqual(h.overlay.pending(), [{ id: 'stage-2', kind: 'stock-stage', mediaTime: 105.5, carriage: 'daterange' }]);
  h.video.play(2);
  const [s] = h.events.filter((e) => e.event === 'stage');
  assert.equal(s.carriage, 'daterange');
  assert.ok(Math.abs(s.firedAt - 105.5) <= FRAME / 2 + 1e-9, `error ${(s.firedAt - 105.5) * 1000} ms`);
});

test('overlay: both carriages and every rendition deliver it, it fires once', () => {
  const h = harness({}, { currentTime: 104 });
  h.video.play(0.1);
  const json = cueJson({ id: 'dup', kind: 'sold-out', start: '2026-11-26T10:03:05.000Z' });
  h.playlist([dateRange(json)]);
  h.emsg(json, 105.0); // video rendition
  h.emsg(json, 105.0); // audio rendition
  h.playlist([dateRange(json)]); // next reload
  h.video.play(2);
  h.playlist([dateRange(json)]); // still in the window after airing
  h.emsg(json, 105.0); // refetched part after a level switch
  h.video.play(1);
  assert.equal(h.events.filter((e) => e.event === 'soldout').length, 1);
});

test('overlay: `carriages` reads one carriage alone; an unknown one is a TypeError', () => {
  const json = cueJson({ id: 'one', kind: 'custom', start: '2026-11-26T10:03:05.000Z' });
  const emsgOnly = harness({ carriages: ['emsg'] }, { currentTime: 104 });
  emsgOnly.playlist([dateRange(json)]);
  assert.deepEqual(emsgOnly.overlay.pending(), []);
  emsgOnly.emsg(json, 105.0);
  assert.deepEqual(emsgOnly.overlay.pending().map((p) => p.carriage), ['emsg']);
  emsgOnly.overlay.detach(); // its wake-up timer would keep the test process alive

  const dateRangeOnly = harness({ carriages: ['daterange'] }, { currentTime: 104 });
  dateRangeOnly.emsg(json, 105.0);
  assert.deepEqual(dateRangeOnly.overlay.pending(), []);
  dateRangeOnly.playlist([dateRange(json)]);
  dateRangeOnly.video.play(2);
  assert.deepEqual(dateRangeOnly.events.filter((e) => e.event === 'custom').map((e) => e.carriage), ['daterange']);

  assert.throws(() => harness({ carriages: ['id3'] }), TypeError);
});

test('overlay: the emsg pts corrects a DATERANGE mapped before fragment PTS were known', () => {
  const h = harness({}, { currentTime: 104 });
  h.video.play(0.1);
  const json = cueJson({ id: 'refine', kind: 'product-card', start: '2026-11-26T10:03:05.000Z' });
  h.playlist([dateRange(json)], { start: 100.3 }); // estimated fragment starts, 300 ms off
  h.emsg(json, 105.0);
  h.video.play(2);
  const [c] = h.events.filter((e) => e.event === 'card');
  assert.ok(Math.abs(c.firedAt - 105.0) <= FRAME / 2 + 1e-9, `fired at ${c.firedAt}`);
});

test('overlay: joining mid-offer fires at once, flagged late; an expired offer never fires', () => {
  const h = harness({}, { currentTime: 130 });
  h.video.play(0.1);
  h.emsg(cueJson({ id: 'running', durationMs: 30_000 }), 110);
  h.emsg(cueJson({ id: 'over', durationMs: 10_000 }), 110);
  h.video.play(FRAME);
  assert.deepEqual(h.events.filter((e) => e.event === 'offer').map((e) => [e.id, e.late]), [['running', true]]);
  h.video.play(1);
  assert.equal(h.events.filter((e) => e.event === 'offer').length, 1);
});

test('overlay: a DATERANGE withdrawn before airing is cancelled; one that slid out is not', () => {
  const h = harness({}, { currentTime: 100 });
  h.video.play(0.1);
  const soon = cueJson({ id: 'withdrawn', start: '2026-11-26T10:03:10.000Z' });
  h.playlist([dateRange(soon)]);
  h.playlist([]); // gone while its start (110) is still inside the window (100..120)
  h.emsg(soon, 110); // even if it then turned up in the media, it stays cancelled
  h.video.play(12);
  assert.equal(h.events.length, 0);
  assert.ok(h.logs.some((l) => l.includes('withdrawn')), h.logs.join('\n'));
});

test('overlay: paused video fires late cues from currentTime; timers without frame callbacks', () => {
  mock.timers.enable({ apis: ['setTimeout'] });
  try {
    const h = harness({}, { frames: false, currentTime: 50 });
    h.emsg(cueJson({ id: 't1' }), 51);
    assert.equal(h.events.length, 0);
    h.video.currentTime = 50.995; // the timer wakes 4 ms early and polls again
    mock.timers.tick(996);
    assert.equal(h.events.length, 0);
    h.video.currentTime = 51.0;
    mock.timers.tick(5);
    assert.equal(h.events.filter((e) => e.event === 'offer').length, 1);
    assert.equal(h.events[0].firedAt, 51.0);

    h.video.paused = true;
    h.video.currentTime = 70;
    h.emsg(cueJson({ id: 'late' }), 60);
    assert.deepEqual(h.events.filter((e) => e.event === 'offer').map((e) => [e.id, e.late]), [['t1', false], ['late', true]]);
  } finally {
    mock.timers.reset();
  }
});

test('overlay: malformed input is logged and never thrown into hls.js', () => {
  const h = harness({}, { currentTime: 0 });
  const inputs = [
    undefined,
    null,
    {},
    { samples: null },
    { samples: [null, {}, { type: EMSG }, { type: EMSG, data: 'ID3' }, { type: EMSG, data: new Uint8Array(5) }] },
    { samples: [{ type: EMSG, pts: 1, data: cueId3('{"id":"x"') }] },
    { samples: [{ type: EMSG, pts: 1, data: cueId3(cueJson({ kind: 'nope' })) }] },
    { samples: [{ type: EMSG, pts: NaN, data: cueId3(cueJson({ id: 'no-time' })) }] },
  ];
  for (const data of inputs) h.hls.trigger('hlsFragParsingMetadata', data);
  const badRanges = [{ attr: null }, { attr: { CLASS: 'com.dropline.custom', ID: 'y', 'X-PAYLOAD': '%%%' } }];
  for (const d of [undefined, {}, { dateRanges: null }, details(badRanges), details([dateRange(cueJson())], { count: 0 })]) {
    h.hls.trigger('hlsLevelUpdated', { details: d });
    h.hls.trigger('hlsLevelPtsUpdated', { details: d });
  }
  h.hls.trigger('hlsLevelUpdated', undefined);
  h.video.play(2);
  assert.equal(h.events.length, 0);
  assert.equal(h.logs.filter((l) => l.startsWith('DATERANGE y:')).length, 1, 'a bad DATERANGE is logged once, not per reload');
  assert.ok(h.logs.length >= 5, h.logs.join('\n'));
});

test('overlay: without a pts the emsg cue time comes from the PROGRAM-DATE-TIME', () => {
  const h = harness({}, { currentTime: 100 });
  h.video.play(0.1);
  // No pts: the start maps through the fragment's PROGRAM-DATE-TIME (fragment at 100 = 10:03:00).
  const frag = { start: 100, programDateTime: Date.parse('2026-11-26T10:03:00.000Z') };
  h.emsg(cueJson({ id: 'pdt', start: '2026-11-26T10:03:01.000Z' }), undefined, frag);
  h.video.play(1.5);
  assert.equal(h.events.filter((e) => e.event === 'cue').length, 1);
  assert.ok(Math.abs(h.events[0].mediaTime - 101) < 1e-9);
});

test('overlay: detach removes every listener; DESTROYING detaches', () => {
  const h = harness({}, { currentTime: 0 });
  assert.ok(h.hls.count() > 0);
  h.emsg(cueJson({ id: 'z' }), 1);
  h.hls.trigger('hlsDestroying');
  assert.equal(h.hls.count(), 0);
  h.video.play(2);
  assert.equal(h.events.length, 0);
  assert.throws(() => attachOverlay(null, h.video), TypeError);
  assert.throws(() => attachOverlay(h.hls, null), TypeError);
});

test('overlay: a schedule shared with a new attachment never fires an id twice', () => {
  const h = harness({}, { currentTime: 10 });
  h.video.play(0.1);
  h.emsg(cueJson({ id: 'once' }), 10.5);
  h.emsg(cueJson({ id: 'pending' }), 30);
  h.video.play(1);
  h.overlay.detach();
  // The page rebuilds its Hls after a fatal error and re-attaches with the same schedule.
  const hls = new FakeHls();
  const again = attachOverlay(hls, h.video, { schedule: h.overlay.schedule, now: () => h.video.wallMs });
  const ids = [];
  again.addEventListener('cue', (e) => ids.push(e.detail.id));
  assert.deepEqual(again.pending(), [], 'times from the old timeline are dropped');
  const emsg = (json, pts) => hls.trigger('hlsFragParsingMetadata', { samples: [{ pts, type: EMSG, data: cueId3(json) }] });
  emsg(cueJson({ id: 'once' }), 11.5);
  emsg(cueJson({ id: 'pending' }), 12);
  h.video.play(2);
  assert.deepEqual(ids, ['pending']);
});

test('overlay: frames dropped or played fast — fires on the callback nearest its time', () => {
  // Callbacks every 1/15 s of media (every other 30 fps frame reaches the screen).
  const h = harness({}, { currentTime: 20, frameS: 1 / 15 });
  h.video.play(1);
  // Callbacks at 20 + k/15 s: 21.6 and 22.0 are two of them. The step is learnt before 21.6.
  h.emsg(cueJson({ id: 'a' }), 21.6 + 0.025); // 25 ms after a callback, 42 ms before the next
  h.emsg(cueJson({ id: 'b' }), 22.0 + 0.045); // 45 ms after a callback, 22 ms before the next
  h.video.play(2);
  const err = Object.fromEntries(h.events.filter((e) => e.event === 'cue').map((e) => [e.id, e.firedAt - e.mediaTime]));
  assert.ok(Math.abs(err.a + 0.025) < 1e-4, `a: ${err.a}`);
  assert.ok(Math.abs(err.b - (1 / 15 - 0.045)) < 1e-4, `b: ${err.b}`);
});

test('overlay: a parsed segment corrects the playlist estimate of a DATERANGE time', () => {
  const h = harness({}, { currentTime: 104 });
  h.video.play(0.1);
  const json = cueJson({ id: 'anchored', kind: 'stock-stage', start: '2026-11-26T10:03:05.000Z' });
  h.playlist([dateRange(json)], { start: 100.15 }); // fragment starts estimated 150 ms late
  assert.ok(Math.abs(h.overlay.pending()[0].mediaTime - 105.15) < 1e-9);
  // hls.js parsed part 0 of the segment dated 10:03:04 (estimated at 104.15): it starts at 104.0.
  const frag = { start: 104.15, programDateTime: Date.parse('2026-11-26T10:03:04.000Z') };
  const pts = (type, startPTS, index = 0) => ({
    details: details([dateRange(json)], { start: 100.15 }),
    type,
    frag,
    part: { index, fragOffset: index * 0.2, elementaryStreams: { [type]: { startPTS } } },
    start: 104.0,
    drift: 0,
  });
  h.hls.trigger('hlsLevelPtsUpdated', pts('video', 104.0));
  assert.ok(Math.abs(h.overlay.pending()[0].mediaTime - 105.0) < 1e-9, JSON.stringify(h.overlay.pending()));
  // Neither an audio chunk nor a later part moves it.
  h.hls.trigger('hlsLevelPtsUpdated', pts('audio', 103.98));
  h.hls.trigger('hlsLevelPtsUpdated', pts('video', 104.7, 3));
  assert.ok(Math.abs(h.overlay.pending()[0].mediaTime - 105.0) < 1e-9);
  h.video.play(1.5);
  const [c] = h.events.filter((e) => e.event === 'stage');
  assert.ok(Math.abs(c.firedAt - 105.0) <= FRAME / 2 + 1e-9, `fired at ${c.firedAt}`);
});

test('overlay: loading another source drops what was pending on the old timeline', () => {
  const h = harness({}, { currentTime: 0 });
  h.emsg(cueJson({ id: 'old' }), 5);
  h.hls.trigger('hlsManifestLoading', { url: 'other.m3u8' });
  assert.deepEqual(h.overlay.pending(), []);
  h.video.play(6);
  assert.equal(h.events.length, 0);
});
