// The StreamFlex dashboard: sign in with an API key, list streams with their live state, and per
// stream show the RTMP URL and key, charts of the ingest, a low-latency preview, key rotation and
// viewer tokens. No framework: the page is static HTML that this module fills in.
import Hls from 'hls.js';

import { Api, ApiError, type KeyInfo, type Stream } from './api';
import { drawChart, History } from './chart';

const POLL_MS = 2000;
const HISTORY_MS = 5 * 60 * 1000;
const KEY_STORAGE = 'streamflex.apiKey';

const $ = <T extends HTMLElement = HTMLElement>(id: string) => document.getElementById(id) as T;

interface Selected {
  name: string;
  bitrate: History;
  fps: History;
  gop: History;
}

// State the browser test (and a curious operator in the console) can read.
interface DashboardState {
  signedIn: boolean;
  selected: string | null;
  live: boolean;
  polls: number;
  preview: { url: string | null; playing: boolean; latency: number | null; errors: string[] };
}
const state: DashboardState = {
  signedIn: false,
  selected: null,
  live: false,
  polls: 0,
  preview: { url: null, playing: false, latency: null, errors: [] },
};
(window as unknown as { sfDashboard: DashboardState }).sfDashboard = state;

let api: Api | null = null;
let streams: Stream[] = [];
let selected: Selected | null = null;
let pollTimer: number | undefined;
let hls: Hls | null = null;

function errorText(e: unknown): string {
  if (e instanceof ApiError) return `${e.status}: ${e.message}`;
  return e instanceof Error ? e.message : String(e);
}

function formatBitrate(bps: number): string {
  if (bps >= 1e6) return `${(bps / 1e6).toFixed(bps >= 1e7 ? 0 : 1)} Mb/s`;
  if (bps >= 1e3) return `${(bps / 1e3).toFixed(0)} kb/s`;
  return `${bps.toFixed(0)} b/s`;
}

function time(ms: number | null): string {
  return ms ? new Date(ms).toLocaleTimeString() : '—';
}

// ---- sign in ----

async function signIn(key: string) {
  const candidate = new Api(key);
  const who = await candidate.whoami();
  api = candidate;
  sessionStorage.setItem(KEY_STORAGE, key);
  state.signedIn = true;
  $('who').textContent = `${who.name} (${who.scopes.join(', ')})`;
  $('sign-in').hidden = true;
  $('app').hidden = false;
  $('sign-out').hidden = false;
  await refreshStreams();
  pollTimer = window.setInterval(poll, POLL_MS);
}

function signOut() {
  sessionStorage.removeItem(KEY_STORAGE);
  window.clearInterval(pollTimer);
  stopPreview();
  api = null;
  selected = null;
  state.signedIn = false;
  state.selected = null;
  $('who').textContent = '';
  $('sign-in').hidden = false;
  $('app').hidden = true;
  $('sign-out').hidden = true;
  $<HTMLInputElement>('api-key').value = '';
}

$('sign-in-form').addEventListener('submit', (ev) => {
  ev.preventDefault();
  const key = $<HTMLInputElement>('api-key').value.trim();
  $('sign-in-error').textContent = '';
  signIn(key).catch((e) => {
    $('sign-in-error').textContent =
      e instanceof ApiError && e.status === 401 ? 'That API key is not valid.' : `Sign-in failed: ${errorText(e)}`;
  });
});
$('sign-out').addEventListener('click', signOut);

// ---- stream list ----

async function refreshStreams() {
  if (!api) return;
  streams = await api.streams();
  const list = $('streams');
  list.replaceChildren(
    ...streams.map((s) => {
      const li = document.createElement('li');
      li.dataset.stream = s.name;
      li.dataset.testid = `stream-${s.name}`;
      li.className = s.name === selected?.name ? 'selected' : '';
      const name = document.createElement('span');
      name.textContent = s.name;
      const badge = document.createElement('span');
      const live = !!s.live?.publishing;
      badge.className = `badge ${live ? 'live' : 'off'}`;
      badge.textContent = live ? 'LIVE' : 'offline';
      const vis = document.createElement('span');
      vis.className = 'hint';
      vis.textContent = s.visibility === 'token' ? 'token' : 'public';
      li.append(name, ' ', badge, ' ', vis);
      li.addEventListener('click', () => select(s.name));
      return li;
    }),
  );
}

function select(name: string, secret?: string) {
  if (selected?.name !== name) {
    stopPreview();
    selected = {
      name,
      bitrate: new History(HISTORY_MS),
      fps: new History(HISTORY_MS),
      gop: new History(HISTORY_MS),
    };
    state.live = false;
    $('token-out').hidden = true;
    $('token-error').textContent = '';
    $('keys-error').textContent = '';
  }
  state.selected = name;
  showSecret(secret);
  $('no-selection').hidden = true;
  $('stream-view').hidden = false;
  for (const li of $('streams').querySelectorAll('li')) li.classList.toggle('selected', li.dataset.stream === name);
  void pollSelected();
  void refreshKeys();
}

function showSecret(key?: string) {
  $('secret').hidden = !key;
  $('secret-key').textContent = key ?? '';
}

// ---- create ----

$('create-form').addEventListener('submit', (ev) => {
  ev.preventDefault();
  if (!api) return;
  const form = ev.target as HTMLFormElement;
  const data = new FormData(form);
  const settings = {
    name: String(data.get('name')),
    visibility: String(data.get('visibility')) as Stream['visibility'],
    latency: String(data.get('latency')),
  };
  $('create-error').textContent = '';
  api
    .createStream(settings)
    .then(async (created) => {
      form.reset();
      await refreshStreams();
      select(created.stream.name, created.key.key);
    })
    .catch((e) => ($('create-error').textContent = errorText(e)));
});

// ---- the selected stream ----

async function poll() {
  state.polls++;
  try {
    await refreshStreams();
    await pollSelected();
  } catch (e) {
    if (e instanceof ApiError && e.status === 401) signOut();
  }
}

async function pollSelected() {
  if (!api || !selected) return;
  const current = selected;
  let s: Stream;
  try {
    s = await api.stream(current.name);
  } catch (e) {
    if (e instanceof ApiError && e.status === 404) {
      selected = null;
      state.selected = null;
      $('stream-view').hidden = true;
      $('no-selection').hidden = false;
      stopPreview();
    }
    return;
  }
  if (selected !== current) return;
  const now = Date.now();
  const live = s.live ?? null;
  const publishing = !!live?.publishing;
  current.bitrate.add(now, publishing ? (live?.bitrate_bps ?? null) : null);
  current.fps.add(now, publishing ? (live?.fps ?? null) : null);
  current.gop.add(now, publishing ? (live?.keyframe_interval_s ?? null) : null);

  $('d-name').textContent = s.name;
  const badge = $('d-live');
  badge.textContent = publishing ? 'LIVE' : 'offline';
  badge.className = `badge ${publishing ? 'live' : 'off'}`;
  $('d-rtmp').textContent = s.rtmp_url;
  $('d-playback').textContent = s.playback_url;
  $('d-visibility').textContent =
    s.visibility === 'token' ? 'token: viewers need a token (issue one below)' : 'public';
  const toggle = $<HTMLButtonElement>('toggle-visibility');
  toggle.textContent = s.visibility === 'token' ? 'Make public' : 'Require tokens';
  toggle.dataset.to = s.visibility === 'token' ? 'public' : 'token';
  $('d-video').textContent =
    publishing && live
      ? `${live.width ?? '?'}×${live.height ?? '?'} ${live.video_codec ?? ''} ${live.audio_codec ?? ''} · live since ${time(live.since_ms)}`
      : '—';
  $('d-viewers').textContent = live?.viewers == null ? '—' : String(live.viewers);
  $('v-bitrate').textContent = current.bitrate.last == null ? '—' : formatBitrate(current.bitrate.last);
  $('v-fps').textContent = current.fps.last == null ? '—' : `${current.fps.last.toFixed(1)} fps`;
  $('v-gop').textContent = current.gop.last == null ? '—' : `${current.gop.last.toFixed(2)} s`;
  drawChart($<HTMLElement>('c-bitrate') as unknown as SVGSVGElement, current.bitrate, now, (v) =>
    formatBitrate(v).replace(' ', ''),
  );
  drawChart($<HTMLElement>('c-fps') as unknown as SVGSVGElement, current.fps, now, (v) => v.toFixed(0));
  drawChart($<HTMLElement>('c-gop') as unknown as SVGSVGElement, current.gop, now, (v) => `${v.toFixed(1)}s`);

  state.live = publishing;
  if (publishing && !hls) void startPreview(s);
  if (!publishing && hls) stopPreview();
}

// ---- keys ----

async function refreshKeys() {
  if (!api || !selected) return;
  const name = selected.name;
  let keys: KeyInfo[];
  try {
    keys = await api.keys(name);
  } catch (e) {
    $('keys-error').textContent = errorText(e);
    return;
  }
  if (selected?.name !== name) return;
  const body = $('keys').querySelector('tbody')!;
  body.replaceChildren(
    ...keys.map((k) => {
      const tr = document.createElement('tr');
      tr.dataset.key = k.id;
      tr.dataset.state = k.state;
      for (const text of [k.id, k.state, time(k.created_ms), time(k.expires_ms)]) {
        const td = document.createElement('td');
        td.textContent = text;
        tr.append(td);
      }
      const actions = document.createElement('td');
      if (k.state === 'active') {
        const rotate = document.createElement('button');
        rotate.textContent = 'Rotate';
        rotate.dataset.testid = 'rotate';
        rotate.addEventListener('click', () => rotateKey(name, k.id));
        const revoke = document.createElement('button');
        revoke.textContent = 'Revoke';
        revoke.className = 'danger';
        revoke.addEventListener('click', () => revokeKey(name, k.id));
        actions.append(rotate, ' ', revoke);
      }
      tr.append(actions);
      return tr;
    }),
  );
}

function rotateKey(name: string, id: string) {
  if (!api) return;
  const grace = Math.max(0, Number($<HTMLInputElement>('grace').value) || 0);
  $('keys-error').textContent = '';
  api
    .rotateKey(name, id, grace)
    .then((r) => {
      showSecret(r.key);
      return refreshKeys();
    })
    .catch((e) => ($('keys-error').textContent = errorText(e)));
}

function revokeKey(name: string, id: string) {
  if (!api || !confirm(`Revoke key ${id}? Encoders using it can no longer publish.`)) return;
  api
    .revokeKey(name, id)
    .then(refreshKeys)
    .catch((e) => ($('keys-error').textContent = errorText(e)));
}

// ---- viewer tokens ----

$('token-form').addEventListener('submit', (ev) => {
  ev.preventDefault();
  if (!api || !selected) return;
  const data = new FormData(ev.target as HTMLFormElement);
  const ttl = Number(data.get('ttl_s')) || 3600;
  const ip = String(data.get('client_ip') ?? '').trim();
  $('token-error').textContent = '';
  api
    .issueToken(selected.name, ttl, ip || undefined)
    .then((t) => {
      $('token-url').textContent = t.playback_url;
      $('token-expiry').textContent = `Token ${t.token.slice(0, 12)}… valid until ${new Date(t.expires_ms).toLocaleString()}`;
      $('token-out').hidden = false;
    })
    .catch((e) => ($('token-error').textContent = errorText(e)));
});

$('toggle-visibility').addEventListener('click', (ev) => {
  if (!api || !selected) return;
  const to = (ev.target as HTMLButtonElement).dataset.to as Stream['visibility'];
  const name = selected.name;
  $('keys-error').textContent = '';
  api
    .updateStream(name, { visibility: to })
    .then(async () => {
      // The preview restarts with (or without) a token of its own.
      stopPreview();
      await refreshStreams();
      await pollSelected();
    })
    .catch((e) => ($('keys-error').textContent = errorText(e)));
});

$('delete').addEventListener('click', () => {
  if (!api || !selected) return;
  const name = selected.name;
  if (!confirm(`Delete stream ${name} and all its keys?`)) return;
  api
    .deleteStream(name)
    .then(async () => {
      stopPreview();
      selected = null;
      state.selected = null;
      $('stream-view').hidden = true;
      $('no-selection').hidden = false;
      await refreshStreams();
    })
    .catch((e) => ($('keys-error').textContent = errorText(e)));
});

// ---- preview ----

async function startPreview(s: Stream) {
  if (!api) return;
  let url = s.playback_url;
  if (s.visibility === 'token') {
    // A short-lived token of its own, so the preview plays protected streams too.
    try {
      url = (await api.issueToken(s.name, 3600)).playback_url;
    } catch (e) {
      $('preview-state').textContent = `no preview: ${errorText(e)}`;
      return;
    }
  }
  if (hls || selected?.name !== s.name) return;
  const video = $<HTMLVideoElement>('preview');
  state.preview = { url, playing: false, latency: null, errors: [] };
  $('preview-state').textContent = 'loading…';
  if (!Hls.isSupported()) {
    video.src = url; // Safari plays LL-HLS itself
    void video.play().catch(() => {});
    return;
  }
  hls = new Hls({ lowLatencyMode: true, backBufferLength: 30, maxLiveSyncPlaybackRate: 1.5 });
  hls.on(Hls.Events.ERROR, (_e, data) => {
    state.preview.errors.push(`${data.type}/${data.details}`);
    if (data.fatal) {
      $('preview-state').textContent = `error: ${data.details}`;
      const name = s.name;
      stopPreview();
      // Retried by the next poll while the stream is live.
      if (selected?.name !== name) return;
    }
  });
  hls.loadSource(url);
  hls.attachMedia(video);
  void video.play().catch(() => {});
}

function stopPreview() {
  if (hls) {
    hls.destroy();
    hls = null;
  }
  const video = $<HTMLVideoElement>('preview');
  video.removeAttribute('src');
  state.preview.playing = false;
  state.preview.latency = null;
  $('latency').textContent = '—';
  $('preview-state').textContent = 'idle';
}

$('preview').addEventListener('playing', () => {
  state.preview.playing = true;
  $('preview-state').textContent = 'playing';
});

// Latency of the picture on screen: wall clock minus its EXT-X-PROGRAM-DATE-TIME, else hls.js's
// estimate from the live edge.
window.setInterval(() => {
  if (!hls) return;
  const playing = hls.playingDate;
  const latency = playing ? (Date.now() - playing.getTime()) / 1000 : hls.latency;
  if (latency == null || Number.isNaN(latency) || latency <= 0) return;
  state.preview.latency = latency;
  $('latency').textContent = `${latency.toFixed(2)} s`;
}, 500);

// ---- copy buttons ----

document.addEventListener('click', (ev) => {
  const button = (ev.target as HTMLElement).closest<HTMLButtonElement>('button[data-copy]');
  if (!button) return;
  const text = $(button.dataset.copy!).textContent ?? '';
  void navigator.clipboard?.writeText(text).then(
    () => {
      button.textContent = 'Copied';
      setTimeout(() => (button.textContent = 'Copy'), 1200);
    },
    () => {
      // No clipboard (plain http on another host): select the text for a manual copy.
      const range = document.createRange();
      range.selectNodeContents($(button.dataset.copy!));
      getSelection()?.removeAllRanges();
      getSelection()?.addRange(range);
    },
  );
});

const saved = sessionStorage.getItem(KEY_STORAGE);
if (saved) signIn(saved).catch(() => signOut());
