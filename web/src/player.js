// The StreamFlex player page: plays /live/<stream>/master.m3u8 with hls.js in low-latency mode and
// shows the latency it measures. window.sfPlayer exposes the figures for tests.
(function () {
  'use strict';
  const video = document.getElementById('video');
  const input = document.getElementById('stream');
  const errorEl = document.getElementById('error');
  const params = new URLSearchParams(location.search);
  if (params.get('stream')) input.value = params.get('stream');

  const state = { latency: null, glassToGlass: null, targetLatency: null, level: null, stalls: 0,
                  fatalErrors: [], errors: [], playing: false, framesDecoded: 0, samples: [] };
  window.sfPlayer = state;
  let hls = null;

  function start() {
    const name = input.value.trim();
    if (!name) return;
    const url = `/live/${encodeURIComponent(name)}/master.m3u8` + (params.get('token') ? `?token=${encodeURIComponent(params.get('token'))}` : '');
    errorEl.textContent = '';
    if (hls) hls.destroy();
    if (!window.Hls || !Hls.isSupported()) {
      video.src = url;  // Safari plays LL-HLS natively
      return;
    }
    // Speed up to 1.5x when behind the target latency, so a late start or a stall is caught up.
    hls = new Hls({ lowLatencyMode: true, backBufferLength: 30, maxLiveSyncPlaybackRate: 1.5 });
    window.sfHls = hls;
    hls.on(Hls.Events.ERROR, (_, data) => {
      state.errors.push(`${data.type}/${data.details}`);
      if (data.details === 'bufferStalledError') state.stalls++;
      if (data.fatal) {
        state.fatalErrors.push(`${data.type}/${data.details}`);
        errorEl.textContent = `error: ${data.details}`;
        if (data.type === Hls.ErrorTypes.NETWORK_ERROR) setTimeout(start, 2000);
        else if (data.type === Hls.ErrorTypes.MEDIA_ERROR) hls.recoverMediaError();
      }
    });
    hls.on(Hls.Events.LEVEL_SWITCHED, (_, data) => { state.level = data.level; });
    hls.loadSource(url);
    hls.attachMedia(video);
    video.play().catch(() => {});
  }

  video.addEventListener('playing', () => { state.playing = true; });
  setInterval(() => {
    if (!hls) return;
    const fmt = (v) => (v == null || Number.isNaN(v) ? '–' : v.toFixed(2));
    state.latency = hls.latency;
    state.targetLatency = hls.targetLatency;
    // Glass to glass: the wall clock of the frame on screen, from EXT-X-PROGRAM-DATE-TIME.
    const playing = hls.playingDate;
    state.glassToGlass = playing ? (Date.now() - playing.getTime()) / 1000 : null;
    const q = video.getVideoPlaybackQuality ? video.getVideoPlaybackQuality() : null;
    state.framesDecoded = q ? q.totalVideoFrames : 0;
    if (state.playing && state.glassToGlass != null) state.samples.push({ t: Date.now(), latency: state.latency, g2g: state.glassToGlass });
    const level = hls.levels && hls.currentLevel >= 0 ? hls.levels[hls.currentLevel] : null;
    document.getElementById('latency').textContent = fmt(state.latency);
    document.getElementById('glass').textContent = fmt(state.glassToGlass);
    document.getElementById('target').textContent = fmt(state.targetLatency);
    document.getElementById('level').textContent = level ? `${level.height}p ${(level.bitrate / 1e6).toFixed(1)} Mb/s` : '–';
    const b = video.buffered;
    document.getElementById('buffer').textContent = b.length ? fmt(b.end(b.length - 1) - video.currentTime) : '–';
    document.getElementById('stalls').textContent = String(state.stalls);
  }, 500);

  document.getElementById('play').addEventListener('click', start);
  input.addEventListener('keydown', (e) => { if (e.key === 'Enter') start(); });
  start();
})();
