// The control-plane REST API (role `api`), as the dashboard uses it. The API key travels as
// "Authorization: Bearer <key>"; errors are {"error": "..."} with a 4xx status.

export interface LiveState {
  publishing: boolean;
  since_ms: number | null;
  bitrate_bps: number | null;
  fps: number | null;
  keyframe_interval_s: number | null;
  width: number | null;
  height: number | null;
  video_codec: string | null;
  audio_codec: string | null;
  viewers: number | null;
}

export interface Stream {
  name: string;
  visibility: 'public' | 'token';
  profile: string;
  latency: string;
  part_target_ms: number;
  segment_target_ms: number;
  takeover: boolean;
  created_ms: number;
  updated_ms: number;
  rtmp_url: string;
  playback_url: string;
  live?: LiveState | null;
}

export interface KeyInfo {
  id: string;
  created_ms: number;
  expires_ms: number | null;
  revoked_ms: number | null;
  state: 'active' | 'grace' | 'revoked';
}

export interface NewKey {
  id: string;
  key: string;
}

export interface Token {
  token: string;
  expires_ms: number;
  playback_url: string;
}

export interface WhoAmI {
  id: string;
  name: string;
  scopes: string[];
}

export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

export class Api {
  constructor(
    private readonly key: string,
    private readonly base = '',
  ) {}

  private async call<T>(method: string, path: string, body?: unknown): Promise<T> {
    const headers: Record<string, string> = { Authorization: `Bearer ${this.key}` };
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    const res = await fetch(this.base + path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      cache: 'no-store',
    });
    if (res.status === 204) return undefined as T;
    const text = await res.text();
    let data: unknown = null;
    try {
      data = text ? JSON.parse(text) : null;
    } catch {
      // a proxy's HTML error page, say: reported below with the status
    }
    if (!res.ok) {
      const msg = (data as { error?: string } | null)?.error ?? (text.slice(0, 200) || res.statusText);
      throw new ApiError(res.status, msg);
    }
    return data as T;
  }

  whoami() {
    return this.call<WhoAmI>('GET', '/api/whoami');
  }
  streams() {
    return this.call<{ streams: Stream[] }>('GET', '/api/streams').then((r) => r.streams);
  }
  stream(name: string) {
    return this.call<Stream>('GET', `/api/streams/${encodeURIComponent(name)}`);
  }
  createStream(settings: Partial<Stream> & { name: string }) {
    return this.call<{ stream: Stream; key: NewKey }>('POST', '/api/streams', settings);
  }
  updateStream(name: string, settings: Partial<Stream>) {
    return this.call<Stream>('PATCH', `/api/streams/${encodeURIComponent(name)}`, settings);
  }
  deleteStream(name: string) {
    return this.call<void>('DELETE', `/api/streams/${encodeURIComponent(name)}`);
  }
  keys(name: string) {
    return this.call<{ keys: KeyInfo[] }>('GET', `/api/streams/${encodeURIComponent(name)}/keys`).then((r) => r.keys);
  }
  rotateKey(name: string, id: string, graceS: number) {
    return this.call<NewKey & { old: { id: string; expires_ms: number } }>(
      'POST',
      `/api/streams/${encodeURIComponent(name)}/keys/${encodeURIComponent(id)}/rotate`,
      { grace_s: graceS },
    );
  }
  revokeKey(name: string, id: string) {
    return this.call<void>('DELETE', `/api/streams/${encodeURIComponent(name)}/keys/${encodeURIComponent(id)}`);
  }
  issueToken(name: string, ttlS: number, clientIp?: string) {
    const body: { ttl_s: number; client_ip?: string } = { ttl_s: ttlS };
    if (clientIp) body.client_ip = clientIp;
    return this.call<Token>('POST', `/api/streams/${encodeURIComponent(name)}/tokens`, body);
  }
}
