// Checks every version of the LL-HLS media playlists a test saw, with an independent parser
// (npm hls-parser, strict mode) and the rules of draft-pantos-hls-rfc8216bis (SPECS.md §1).
//
// Input (stdin): one JSON object per line, {rendition, t, text[, standard]}: t is the fetch time (ms
// since the epoch), text the playlist body; `standard: true` checks a standard (not low-latency)
// HLS playlist instead: whole segments only, no PART-INF, parts, hints, rendition reports or
// CAN-BLOCK-RELOAD. Versions must come in fetch order; repeated bodies are ignored.
// Output (stdout): one JSON line at EOF, {versions, violations: {rule: [message]}, parts: [...]}.
// Exit 0 even when rules are broken: the Python test decides what fails.
import { createInterface } from 'node:readline';
import HLS from 'hls-parser';

const EPS = 0.0005;           // durations are printed with up to 5 decimals
const FRAME = 0.034;          // one video frame at 30 fps: rounding of media timestamps

const violations = {};
function violation(rule, msg) {
  (violations[rule] ||= []);
  if (violations[rule].length < 50) violations[rule].push(msg);
}

// hls-parser prints its complaints with console.error when not strict; keep stdout clean.
HLS.setOptions({ silent: true });

function parse(text) {
  let strictError = null;
  HLS.setOptions({ strictMode: true, silent: true });
  let p;
  try {
    p = HLS.parse(text);
  } catch (e) {
    strictError = e.message;
    HLS.setOptions({ strictMode: false, silent: true });
    p = HLS.parse(text);
  }
  return { p, strictError };
}

const pdtMs = (s) => (s.programDateTime ? new Date(s.programDateTime).getTime() : null);

// Per rendition: the previous version, all parts ever listed, hints ever given.
const state = {};
function stateOf(name) {
  return (state[name] ||= { versions: 0, prev: null, parts: new Map(), hints: [], lastText: null,
                             maxWindow: 0, serverControl: null });
}

function checkVersion(name, t, text, standard) {
  const st = stateOf(name);
  if (text === st.lastText) return;
  st.lastText = text;
  const v = ++st.versions;
  const where = `${name} v${v}`;
  const { p, strictError } = parse(text);
  if (strictError) violation('strict', `${where}: ${strictError}`);
  if (p.isMasterPlaylist) return violation('not_media', `${where}: not a media playlist`);

  const TD = p.targetDuration;
  const PT = p.partTargetDuration;
  const llc = p.lowLatencyCompatibility || {};
  st.serverControl = JSON.stringify(llc);
  st.control = { td: TD, pt: PT || 0, holdBack: llc.holdBack ?? null, partHoldBack: llc.partHoldBack ?? null,
                 canBlockReload: !!llc.canBlockReload };
  if (standard) {
    if (PT) violation('standard_part_inf', `${where}: EXT-X-PART-INF in a standard playlist`);
    if (llc.canBlockReload) violation('standard_server_control', `${where}: CAN-BLOCK-RELOAD in a standard playlist`);
    if (llc.partHoldBack !== undefined) violation('standard_server_control', `${where}: PART-HOLD-BACK in a standard playlist`);
    if (p.segments.some((s) => s.parts.length)) violation('standard_parts', `${where}: EXT-X-PART or PRELOAD-HINT listed`);
    if (p.segments.some((s) => !s.uri)) violation('standard_open_segment', `${where}: a segment without its URI`);
    if (p.renditionReports.length) violation('standard_rendition_report', `${where}: EXT-X-RENDITION-REPORT listed`);
  } else {
    if (!PT) violation('part_inf', `${where}: no EXT-X-PART-INF`);
    if (!llc.canBlockReload) violation('server_control', `${where}: no CAN-BLOCK-RELOAD=YES`);
    if (!(llc.partHoldBack >= 3 * PT - EPS)) violation('server_control', `${where}: PART-HOLD-BACK ${llc.partHoldBack} < 3·PT`);
  }
  if (!(llc.holdBack >= 3 * TD - EPS) && !(standard && llc.holdBack === undefined))
    violation('server_control', `${where}: HOLD-BACK ${llc.holdBack} < 3·TD`);
  if (llc.canSkipUntil !== undefined && llc.canSkipUntil < 6 * TD) violation('server_control', `${where}: CAN-SKIP-UNTIL < 6·TD`);

  const segs = p.segments;
  const complete = segs.filter((s) => s.uri);
  const open = segs.length && !segs[segs.length - 1].uri ? segs[segs.length - 1] : null;

  // Segment durations (§4.4.3.1): EXTINF rounded to the nearest integer ≤ TARGETDURATION.
  for (const s of complete) {
    if (Math.round(s.duration) > TD) violation('segment_duration', `${where}: ${s.uri} EXTINF ${s.duration} > TD ${TD}`);
    const listed = s.parts.filter((x) => !x.hint);
    if (listed.length) {
      const sum = listed.reduce((a, x) => a + x.duration, 0);
      if (Math.abs(sum - s.duration) > 0.002) violation('segment_parts_sum', `${where}: ${s.uri} EXTINF ${s.duration} != sum of parts ${sum.toFixed(5)}`);
    }
  }

  // PDT (§4.4.4.6, B.1): on every segment, strictly increasing, in step with the durations.
  for (const [i, s] of segs.entries()) {
    if (!s.uri && s.parts.every((x) => x.hint)) continue;  // only the hint of the next segment
    if (pdtMs(s) === null) { violation('pdt_missing', `${where}: segment ${s.mediaSequenceNumber} has no PROGRAM-DATE-TIME`); continue; }
    if (i > 0 && pdtMs(segs[i - 1]) !== null) {
      const a = pdtMs(segs[i - 1]), b = pdtMs(s);
      if (b <= a) violation('pdt_order', `${where}: PDT of ${s.mediaSequenceNumber} (${s.programDateTime.toISOString()}) not after ${segs[i - 1].mediaSequenceNumber}`);
      else if (!s.discontinuity && Math.abs(b - a - 1000 * segs[i - 1].duration) > 40)
        violation('pdt_step', `${where}: PDT step ${b - a} ms != EXTINF ${segs[i - 1].duration} of ${segs[i - 1].mediaSequenceNumber}`);
    }
  }

  // Parts: bounds of §4.4.4.9, identity across versions, age in the playlist (§6.2.2).
  const total = segs.reduce((a, s) => a + (s.uri ? s.duration : s.parts.filter((x) => !x.hint).reduce((b, x) => b + x.duration, 0)), 0);
  let pos = 0;
  let lastListed = null;
  for (const s of segs) {
    const listed = s.parts.filter((x) => !x.hint);
    let partPos = pos;
    for (const [idx, x] of listed.entries()) {
      partPos += x.duration;
      const key = x.uri;
      const rec = { uri: x.uri, msn: s.mediaSequenceNumber, index: idx, duration: x.duration,
                    independent: !!x.independent, map: s.map ? s.map.uri : null, lastOfParent: false,
                    firstSeenVersion: v, firstSeenT: t };
      const old = st.parts.get(key);
      if (old) {
        if (Math.abs(old.duration - x.duration) > EPS || old.independent !== rec.independent || old.msn !== rec.msn || old.index !== idx)
          violation('part_changed', `${where}: ${key} was ${JSON.stringify([old.msn, old.index, old.duration, old.independent])} now ${JSON.stringify([rec.msn, idx, x.duration, rec.independent])}`);
        if (s.uri && idx === listed.length - 1) old.lastOfParent = true;
        if (idx < listed.length - 1) old.notLast = true;  // another part of its segment followed it
      } else {
        rec.lastOfParent = !!s.uri && idx === listed.length - 1;
        rec.notLast = idx < listed.length - 1;
        st.parts.set(key, rec);
      }
      if (x.duration > PT + EPS) violation('part_max', `${where}: ${key} DURATION ${x.duration} > PART-TARGET ${PT}`);
      const age = total - partPos;
      st.maxPartAge = Math.max(st.maxPartAge || 0, age);
      if (age > 3 * TD + EPS) violation('part_age', `${where}: ${key} ends ${age.toFixed(3)} s before the end (> 3·TD = ${3 * TD})`);
      lastListed = { msn: s.mediaSequenceNumber, index: idx };
    }
    pos += s.uri ? s.duration : listed.reduce((b, x) => b + x.duration, 0);
  }

  // Preload hint (§4.4.5.3, §6.2.6): exactly the next part.
  const hint = open && open.parts.find((x) => x.hint);
  const hints = segs.flatMap((s) => s.parts.filter((x) => x.hint));
  // A live list with parts carries exactly one hint (B.1); a list still empty at start-up needs none.
  const anyPart = segs.some((s) => s.parts.some((x) => !x.hint));
  if (hints.length > 1 || (anyPart && hints.length !== 1)) violation('hint', `${where}: ${hints.length} PRELOAD-HINT TYPE=PART`);
  if (hint) {
    st.hints.push({ uri: hint.uri, version: v, t });
    const m = /s(\d+)\.p(\d+)\.m4s$/.exec(hint.uri);
    if (m && lastListed) {
      const [hm, hp] = [Number(m[1]), Number(m[2])];
      const lastSeg = segs[segs.length - 1];
      const lastComplete = complete.length && complete[complete.length - 1].mediaSequenceNumber === lastListed.msn;
      const ok = (hm === lastListed.msn && hp === lastListed.index + 1 && !lastComplete) || (hm === lastListed.msn + 1 && hp === 0 && lastComplete);
      if (!ok) violation('hint_not_next', `${where}: hint ${hint.uri} after last part (${lastListed.msn}, ${lastListed.index}) of ${lastSeg.uri || 'open segment'}`);
    }
  }

  // Rendition reports (B.1): one per other rendition.
  // (At start-up the other rendition may have no part to report yet: from the first complete segment on.)
  if (!standard && complete.length && !p.renditionReports.length) violation('rendition_report', `${where}: no EXT-X-RENDITION-REPORT`);

  // Window: never shorter than 3·TD once it was (§6.2.2).
  const windowSeconds = complete.reduce((a, s) => a + s.duration, 0);
  if (st.maxWindow >= 3 * TD && windowSeconds < 3 * TD - EPS) violation('window_short', `${where}: ${windowSeconds.toFixed(3)} s of complete segments < 3·TD`);
  st.maxWindow = Math.max(st.maxWindow, windowSeconds);

  // Against the previous version: media sequence continuity, immutable segments.
  const prev = st.prev;
  if (prev) {
    if (p.mediaSequenceBase < prev.mediaSequenceBase) violation('msn_decreased', `${where}: MEDIA-SEQUENCE ${p.mediaSequenceBase} < ${prev.mediaSequenceBase}`);
    const prevLast = prev.segments.length ? prev.segments[prev.segments.length - 1].mediaSequenceNumber : -1;
    if (p.mediaSequenceBase > prevLast + 1) violation('msn_gap', `${where}: MEDIA-SEQUENCE ${p.mediaSequenceBase} skips past ${prevLast}`);
    if ((p.discontinuitySequenceBase || 0) < (prev.discontinuitySequenceBase || 0)) violation('msn_decreased', `${where}: DISCONTINUITY-SEQUENCE decreased`);
    const byMsn = new Map(prev.segments.filter((s) => s.uri).map((s) => [s.mediaSequenceNumber, s]));
    for (const s of complete) {
      const o = byMsn.get(s.mediaSequenceNumber);
      if (!o) continue;
      if (o.uri !== s.uri || Math.abs(o.duration - s.duration) > EPS || pdtMs(o) !== pdtMs(s))
        violation('segment_changed', `${where}: segment ${s.mediaSequenceNumber} was ${o.uri} ${o.duration} ${pdtMs(o)} now ${s.uri} ${s.duration} ${pdtMs(s)}`);
    }
    // A segment listed before must not vanish from the middle: removal only at the front.
    for (const msn of byMsn.keys())
      if (msn >= p.mediaSequenceBase && !complete.some((s) => s.mediaSequenceNumber === msn))
        violation('segment_vanished', `${where}: complete segment ${msn} disappeared`);
    if (prev.targetDuration !== TD) violation('td_changed', `${where}: TARGETDURATION ${prev.targetDuration} -> ${TD}`);
  }
  st.prev = p;
}

const rl = createInterface({ input: process.stdin, crlfDelay: Infinity });
for await (const line of rl) {
  if (!line.trim()) continue;
  const { rendition, t, text, standard } = JSON.parse(line);
  try {
    checkVersion(rendition, t, text, !!standard);
  } catch (e) {
    violation('checker_error', `${rendition}: ${e.stack}`);
  }
}

// After the run: hints that never came true, the 0.85·PT floor with full knowledge of which part
// ended its parent, control attributes shared by all renditions.
const out = { versions: {}, maxPartAge: {}, parts: {}, control: {}, violations };
const controls = new Map();  // stream ("" when renditions are fed without one) -> controls seen
for (const [name, st] of Object.entries(state)) {
  out.versions[name] = st.versions;
  out.control[name] = st.control;
  out.maxPartAge[name] = Number((st.maxPartAge || 0).toFixed(3));
  const stream = name.includes('/') ? name.slice(0, name.indexOf('/')) : '';
  if (!controls.has(stream)) controls.set(stream, new Set());
  controls.get(stream).add(st.serverControl);
  // A hint the server has moved past (a later version hints something else) must have been listed;
  // the hint still current at the end may be pending.
  const finalHint = st.hints.length ? st.hints[st.hints.length - 1].uri : null;
  for (const h of st.hints) {
    if (h.uri === finalHint) continue;
    if (!st.parts.has(h.uri)) violation('hint_unfulfilled', `${name}: hint ${h.uri} (v${h.version}) never listed as a part`);
  }
  const prev = st.prev;
  for (const rec of st.parts.values()) {
    const PT = prev.partTargetDuration;
    if (rec.duration < 0.85 * PT - EPS && !rec.independent && !rec.lastOfParent && rec.notLast)
      violation('part_min', `${name}: ${rec.uri} DURATION ${rec.duration} < 0.85·PT and neither INDEPENDENT nor last of its segment`);
  }
  out.parts[name] = [...st.parts.values()];
}
// Renditions of one presentation share their controls (a test may feed several streams, naming
// renditions "<stream>/<rendition>").
for (const [stream, set] of controls)
  if (set.size > 1) violation('server_control', `EXT-X-SERVER-CONTROL differs between renditions${stream ? ' of ' + stream : ''}: ${[...set].join(' vs ')}`);
process.stdout.write(JSON.stringify(out) + '\n');
