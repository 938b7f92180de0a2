// Plays a StreamFlex ladder with hls.js on the origin's player page in headless Chromium (Debian's
// /usr/bin/chromium driven by playwright-core) and forces the player through every level while it
// plays, highest first, as its ABR controller switches (hls.loadLevel: the next fragments come from
// that level, what is buffered plays out, nothing is flushed). Reports, as one JSON line on stdout, for each level: when hls.js said it switched,
// the picture size the <video> element then decoded, and the frames decoded on that level; plus
// the player's stalls and errors.
//
//   node play_levels.mjs <player page URL> <seconds per level> <out dir>
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { chromium } from 'playwright-core';

const [target, perLevelArg, outDir] = process.argv.slice(2);
const perLevel = Number(perLevelArg);
if (!target || !(perLevel > 0) || !outDir) {
  console.error('usage: node play_levels.mjs URL SECONDS_PER_LEVEL OUT_DIR');
  process.exit(2);
}

const profile = mkdtempSync(join(tmpdir(), 'sf-chromium-'));
let context;
const result = { target, levels: [], visits: [], console: [], pageErrors: [], failed: [], screenshot: null };
const state = (page) => page.evaluate(() => {
  const p = window.sfPlayer || {};
  const v = document.querySelector('video');
  const q = v && v.getVideoPlaybackQuality ? v.getVideoPlaybackQuality() : null;
  return { t: Date.now(), playing: !!p.playing, stalls: p.stalls || 0, fatalErrors: (p.fatalErrors || []).slice(),
           errors: (p.errors || []).slice(-20), frames: q ? q.totalVideoFrames : 0,
           width: v ? v.videoWidth : 0, height: v ? v.videoHeight : 0,
           switched: (window.sfSwitched || []).slice(), hlsErrors: (window.sfErrors || []).slice(), level: window.sfHls ? window.sfHls.currentLevel : null };
});
try {
  context = await chromium.launchPersistentContext(profile, {
    executablePath: process.env.SF_CHROMIUM || '/usr/bin/chromium',
    headless: true,
    viewport: { width: 1300, height: 900 },
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
           '--disable-component-update', '--disable-sync', '--autoplay-policy=no-user-gesture-required'],
  });
  const page = context.pages()[0] || await context.newPage();
  page.on('console', (m) => { if (['error', 'warning'].includes(m.type()) && result.console.length < 100) result.console.push(`${m.type()}: ${m.text()}`); });
  page.on('pageerror', (e) => result.pageErrors.push(String(e)));
  page.on('response', (r) => { if (r.status() >= 400 && result.failed.length < 50) result.failed.push(`${r.status()} ${r.url()}`); });
  page.on('requestfailed', (r) => { if (result.failed.length < 50) result.failed.push(`failed ${r.failure() && r.failure().errorText} ${r.url()}`); });
  await page.goto(target, { waitUntil: 'load', timeout: 15000 });
  await page.waitForFunction(() => window.sfHls, null, { timeout: 15000, polling: 20 });
  await page.evaluate(() => {
    window.sfErrors = [];
    window.sfHls.on(window.Hls.Events.ERROR, (_, d) => window.sfErrors.push({
      t: Date.now(), type: d.type, details: d.details, fatal: !!d.fatal,
      frag: d.frag ? `${d.frag.level}/${d.frag.sn}/${d.frag.url}` : null,
      part: d.part ? d.part.url : null, reason: d.reason || (d.error ? String(d.error) : null),
      level: window.sfHls.currentLevel }));
  });
  await page.waitForFunction(() => window.sfHls && window.sfPlayer && window.sfPlayer.playing &&
                                   window.sfHls.levels && window.sfHls.levels.length > 0, null, { timeout: 30000 });
  await page.evaluate(() => {
    window.sfSwitched = [];
    window.sfHls.on(window.Hls.Events.LEVEL_SWITCHED, (_, d) => window.sfSwitched.push({ level: d.level, t: Date.now() }));
  });
  result.levels = await page.evaluate(() => window.sfHls.levels.map((l) => ({ width: l.width, height: l.height, bitrate: l.bitrate })));
  // Highest first (hls.js sorts its levels by bit rate, lowest first).
  const order = result.levels.map((_, i) => i).reverse();
  for (const index of order) {
    const before = await state(page);
    const asked = Date.now();
    await page.evaluate((i) => { window.sfHls.loadLevel = i; }, index);
    const want = result.levels[index].height;
    let shown = null;
    const deadline = asked + 20000;
    while (Date.now() < deadline) {
      await page.waitForTimeout(250);
      const s = await state(page);
      const onIt = s.switched.some((x) => x.level === index && x.t >= asked) ||
                   (before.level === index && s.switched.every((x) => x.t < asked || x.level === index));
      if (s.height === want && onIt) { shown = s; break; }
    }
    const visit = { index, height: want, askedAt: asked, shownAfterMs: shown ? shown.t - asked : null,
                    videoHeight: shown ? shown.height : (await state(page)).height, framesBefore: before.frames };
    await page.waitForTimeout(perLevel * 1000);
    const after = await state(page);
    visit.framesOnLevel = after.frames - (shown ? shown.frames : before.frames);
    visit.heightAtEnd = after.height;
    result.visits.push(visit);
  }
  const shot = join(resolve(outDir), 'levels-player.png');
  await page.screenshot({ path: shot });
  result.screenshot = shot;
  result.final = await state(page);
} catch (e) {
  result.error = String(e && e.stack || e);
  try { result.final = context ? await state(context.pages()[0]) : null; } catch (_) { /* page gone */ }
} finally {
  if (context) await context.close().catch(() => {});
  rmSync(profile, { recursive: true, force: true });
}
process.stdout.write(JSON.stringify(result) + '\n');
