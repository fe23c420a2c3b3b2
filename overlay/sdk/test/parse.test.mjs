// Wire parsing: ID3v2.4 TXXX (syncsafe sizes), base64url, the cue JSON, DATERANGE attributes and
// the PROGRAM-DATE-TIME mapping. Fixtures are built from the cue carriage contract.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  CueError,
  anchorOfParsedChunk,
  cueFromDateRange,
  cueTextsFromId3,
  decodeBase64url,
  mediaTimeOfDate,
  parseCue,
  readSyncsafe,
  readTxxxFrames,
} from '../dropline-overlay.mjs';
import { base64url, cueId3, cueJson, dateRange, details, id3Frame, id3Tag, syncsafe, txxx } from './fixtures.mjs';

test('syncsafe integers: 7 bits per byte, a set top bit is invalid', () => {
  assert.equal(readSyncsafe(Uint8Array.from([0, 0, 0x02, 0x01]), 0), 257);
  assert.equal(readSyncsafe(Uint8Array.from([0x7f, 0x7f, 0x7f, 0x7f]), 0), 2 ** 28 - 1);
  assert.equal(readSyncsafe(Uint8Array.from([0, 0, 0x80, 0]), 0), -1);
  for (const n of [0, 127, 128, 16_383, 16_384, 20_000, 2 ** 21 + 5]) {
    assert.equal(readSyncsafe(Uint8Array.from(syncsafe(n)), 0), n, `round trip ${n}`);
  }
});

test('the cue JSON comes out of the emsg ID3 tag', () => {
  const json = cueJson({ durationMs: 30_000, payload: { sku: 'tee-01', price: '29.00 EUR' } });
  assert.deepEqual(cueTextsFromId3(cueId3(json)), [json]);
});

test('a TXXX value larger than 127 bytes needs a multi-byte syncsafe size', () => {
  // 20 KiB of payload: tag and frame sizes use three syncsafe bytes; a plain u32 reading would
  // see a different length and fail.
  const json = cueJson({ payload: { blurb: 'ü'.repeat(10_000) } });
  const bytes = cueId3(json);
  assert.ok(bytes.length > 2 ** 14);
  assert.deepEqual(cueTextsFromId3(bytes), [json]);
});

test('other TXXX descriptions, other frames and trailing padding are skipped', () => {
  const json = cueJson();
  const bytes = id3Tag([
    id3Frame('PRIV', [...new TextEncoder().encode('com.apple.streaming.transportStreamTimestamp'), 0, 0, 0, 0, 0, 0, 0, 0, 1]),
    txxx('something.else', 'nope'),
    txxx('com.dropline.cue', json),
  ]);
  const padded = Uint8Array.from([...bytes, 0, 0, 0, 0]);
  assert.deepEqual(cueTextsFromId3(padded), [json]);
  assert.equal(readTxxxFrames(padded).length, 2);
});

test('two tags in one sample both count', () => {
  const a = cueJson({ id: 'a' });
  const b = cueJson({ id: 'b', kind: 'sold-out' });
  assert.deepEqual(cueTextsFromId3(Uint8Array.from([...cueId3(a), ...cueId3(b)])), [a, b]);
});

test('malformed ID3 is a CueError, never anything else', () => {
  const good = cueId3(cueJson());
  const cases = {
    empty: new Uint8Array(0),
    'not ID3': Uint8Array.from([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]),
    'tag size not syncsafe': Uint8Array.from([...good.subarray(0, 6), 0x80, 0, 0, 0, ...good.subarray(10)]),
    'tag overruns the buffer': good.subarray(0, good.length - 3),
    'frame overruns the tag': (() => {
      const b = good.slice();
      b[10 + 7] = 0x7f; // frame size low byte
      return b;
    })(),
    'ID3v2.2': Uint8Array.from([0x49, 0x44, 0x33, 2, 0, 0, 0, 0, 0, 0]),
    'unsynchronised tag': id3Tag([txxx('com.dropline.cue', cueJson())], { flags: 0x80 }),
    'invalid UTF-8': id3Tag([id3Frame('TXXX', [3, ...new TextEncoder().encode('com.dropline.cue'), 0, 0xff, 0xfe])]),
    'not bytes': 'ID3',
  };
  for (const [name, bytes] of Object.entries(cases)) {
    if (name === 'empty') {
      assert.deepEqual(cueTextsFromId3(bytes), [], name);
      continue;
    }
    assert.throws(() => cueTextsFromId3(bytes), CueError, name);
  }
  // Frames the reader cannot decode are skipped, not misread: compressed (v2.4 flag 0x08), UTF-16.
  const compressed = id3Tag([id3Frame('TXXX', [3, ...new TextEncoder().encode('com.dropline.cue'), 0, 0x7b], { flags: [0, 0x08] })]);
  assert.deepEqual(cueTextsFromId3(compressed), []);
  const utf16 = id3Tag([id3Frame('TXXX', [1, 0xff, 0xfe, 0x61, 0, 0, 0, 0x7b, 0])]);
  assert.deepEqual(cueTextsFromId3(utf16), []);
});

test('every truncation and every single-byte corruption of a tag is handled', () => {
  const good = cueId3(cueJson({ payload: { n: 1 } }));
  for (let len = 0; len < good.length; len += 1) {
    try {
      cueTextsFromId3(good.subarray(0, len));
    } catch (e) {
      assert.ok(e instanceof CueError, `truncated to ${len}: ${e}`);
    }
  }
  for (let i = 0; i < good.length; i += 1) {
    for (const v of [0x00, 0x7f, 0x80, 0xff]) {
      const b = good.slice();
      b[i] = v;
      try {
        for (const text of cueTextsFromId3(b)) {
          try {
            parseCue(text);
          } catch (e) {
            assert.ok(e instanceof CueError, `byte ${i}=${v}: parseCue threw ${e}`);
          }
        }
      } catch (e) {
        assert.ok(e instanceof CueError, `byte ${i}=${v}: ${e}`);
      }
    }
  }
});

test('base64url: URL alphabet, no padding needed; anything else is rejected', () => {
  const text = '{"a":"??>>~~ü"}';
  const enc = base64url(text);
  assert.match(enc, /^[A-Za-z0-9_-]+$/);
  assert.ok(enc.includes('_') || enc.includes('-'), `fixture should exercise the URL alphabet: ${enc}`);
  assert.equal(new TextDecoder().decode(decodeBase64url(enc)), text);
  assert.equal(new TextDecoder().decode(decodeBase64url(`${enc}${'='.repeat((4 - (enc.length % 4)) % 4)}`)), text);
  assert.deepEqual([...decodeBase64url('')], []);
  for (const bad of ['a+b/', 'abc$', 'A', 'abcde', 'ab=c', null, 42]) {
    assert.throws(() => decodeBase64url(bad), CueError, String(bad));
  }
});

test('cue JSON: fields validated, duration optional, payload defaults to null', () => {
  const cue = parseCue(cueJson({ id: 'drop-7.open_1', durationMs: 30_000, payload: { sku: 'x' } }));
  assert.deepEqual(cue, {
    id: 'drop-7.open_1',
    kind: 'offer-open',
    payload: { sku: 'x' },
    start: '2026-11-26T10:03:17.123Z',
    startMs: Date.UTC(2026, 10, 26, 10, 3, 17, 123),
    durationMs: 30_000,
  });
  assert.equal(parseCue(cueJson()).durationMs, null);
  assert.equal(parseCue(cueJson()).payload, null);
  const bad = [
    'not json',
    '[]',
    'null',
    cueJson({ id: '' }),
    cueJson({ id: 'x'.repeat(65) }),
    cueJson({ id: 'has space' }),
    cueJson({ kind: 'offer' }),
    cueJson({ start: 'yesterday' }),
    cueJson({ start: '2026-11-26T10:03:17.123+01:00' }),
    cueJson({ start: '2026-13-26T10:03:17.123Z' }),
    cueJson({ durationMs: -1 }),
    cueJson({ durationMs: 1.5 }),
    cueJson({ durationMs: '30' }),
    JSON.stringify({ id: 'c', kind: 'custom', start: '2026-11-26T10:03:17.123Z', payload: 'x'.repeat(70_000) }),
  ];
  for (const text of bad) assert.throws(() => parseCue(text), CueError, text.slice(0, 80));
});

test('DATERANGE: ours by CLASS prefix; ID, CLASS and X-PAYLOAD must agree', () => {
  const json = cueJson({ id: 'card-1', kind: 'product-card', durationMs: 15_000, payload: { sku: 'a' } });
  const cue = cueFromDateRange(dateRange(json));
  assert.equal(cue.id, 'card-1');
  assert.equal(cue.kind, 'product-card');
  assert.deepEqual(cue.payload, { sku: 'a' });
  assert.equal(cue.durationMs, 15_000);

  assert.equal(cueFromDateRange({ attr: { ID: 'ad', CLASS: 'com.example.ad', 'START-DATE': '2026-11-26T10:00:00Z' } }), null);
  assert.equal(cueFromDateRange({ attr: { ID: 'x', 'START-DATE': '2026-11-26T10:00:00Z' } }), null);
  assert.equal(cueFromDateRange(null), null);

  // START-DATE of the tag wins over the JSON's start.
  const moved = cueFromDateRange(dateRange(json, { startDate: '2026-11-26T10:03:18.000Z' }));
  assert.equal(moved.startMs, Date.parse('2026-11-26T10:03:18.000Z'));

  assert.throws(() => cueFromDateRange(dateRange(json, { id: 'other' })), CueError);
  assert.throws(() => cueFromDateRange(dateRange(json, { cls: 'com.dropline.sold-out' })), CueError);
  assert.throws(() => cueFromDateRange(dateRange(json, { startDate: 'garbage' })), CueError);
  const noPayload = dateRange(json);
  delete noPayload.attr['X-PAYLOAD'];
  assert.throws(() => cueFromDateRange(noPayload), CueError);
  const notBase64 = dateRange(json);
  notBase64.attr['X-PAYLOAD'] = 'e30+';
  assert.throws(() => cueFromDateRange(notBase64), CueError);
  const notUtf8 = dateRange(json);
  notUtf8.attr['X-PAYLOAD'] = Buffer.from([0xff, 0xfe, 0x7b]).toString('base64url');
  assert.throws(() => cueFromDateRange(notUtf8), CueError);
});

test('START-DATE maps through the nearest earlier PROGRAM-DATE-TIME', () => {
  // Fragments at media 100, 102, … with PDT 10:03:00, 10:03:02, …
  const d = details([]);
  assert.equal(mediaTimeOfDate(d, Date.parse('2026-11-26T10:03:00.000Z')), 100);
  assert.ok(Math.abs(mediaTimeOfDate(d, Date.parse('2026-11-26T10:03:17.123Z')) - 117.123) < 1e-9);
  // After the last fragment (a part of the segment being written): extrapolated from the last.
  assert.ok(Math.abs(mediaTimeOfDate(d, Date.parse('2026-11-26T10:03:21.500Z')) - 121.5) < 1e-9);
  // Before the window: from the first fragment.
  assert.ok(Math.abs(mediaTimeOfDate(d, Date.parse('2026-11-26T10:02:59.000Z')) - 99) < 1e-9);
  // A fragment whose PDT does not follow from its predecessor's duration (a discontinuity) is used.
  d.fragments[5] = { start: 110, programDateTime: Date.parse('2026-11-26T10:04:00.000Z') };
  d.fragments.length = 6;
  assert.ok(Math.abs(mediaTimeOfDate(d, Date.parse('2026-11-26T10:04:00.500Z')) - 110.5) < 1e-9);
  assert.ok(Number.isNaN(mediaTimeOfDate({ fragments: [{ start: 0, programDateTime: null }] }, 0)));
  assert.ok(Number.isNaN(mediaTimeOfDate(undefined, 0)));
});

test('a parsed segment anchors its PROGRAM-DATE-TIME on the media timeline, for 30 s', () => {
  const pdt = Date.parse('2026-11-26T10:03:00.000Z');
  const frag = { start: 100.2, programDateTime: pdt }; // start: hls.js's estimate, 200 ms off
  // Part 0 of the fragment parsed: its first sample plays at 100.0.
  const part0 = { index: 0, fragOffset: 0, elementaryStreams: { video: { startPTS: 100.0 } } };
  const anchor = anchorOfParsedChunk({ frag, part: part0, type: 'video', start: 100.0 });
  assert.deepEqual(anchor, { programDateTime: pdt, start: 100.0 });
  // A whole fragment: the stream's start PTS.
  assert.deepEqual(anchorOfParsedChunk({ frag, type: 'video', start: 100.0 }), { programDateTime: pdt, start: 100.0 });
  // A later part: its offset in the segment is nominal (playlist DURATIONs), so no anchor.
  const part3 = { index: 3, fragOffset: 0.6, elementaryStreams: { video: { startPTS: 100.58 } } };
  assert.equal(anchorOfParsedChunk({ frag, part: part3, type: 'video', start: 100.0 }), null);
  for (const bad of [undefined, {}, { frag: { programDateTime: null }, start: 1 }, { frag, part: { index: 0 }, type: 'video' }]) {
    assert.equal(anchorOfParsedChunk(bad), null);
  }
  const d = details([], { start: 100.2 });
  assert.ok(Math.abs(mediaTimeOfDate(d, pdt + 5_000) - 105.2) < 1e-9, 'playlist estimate');
  const next = { programDateTime: pdt + 2_000, start: 101.99 };
  assert.ok(Math.abs(mediaTimeOfDate(d, pdt + 1_000, [anchor, next]) - 101.0) < 1e-9, 'its own segment');
  assert.ok(Math.abs(mediaTimeOfDate(d, pdt + 5_000, [anchor, next]) - 104.99) < 1e-9, 'latest before it');
  assert.ok(Math.abs(mediaTimeOfDate(d, pdt - 1_000, [anchor, next]) - 99.2) < 1e-9, 'before all: playlist');
  assert.ok(Math.abs(mediaTimeOfDate(d, pdt + 40_000, [anchor]) - 140.2) < 1e-9, 'too far: playlist');
});
