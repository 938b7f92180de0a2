#include "app_config.h"

namespace sf::app {

void bind(ConfigSchema& s, AppConfig& c) {
  using std::chrono::milliseconds;
  constexpr std::int64_t kMiB = 1024 * 1024;
  s.add("log.level", "Lowest level logged: debug, info, warn, error", c.log_level);
  s.add_endpoint("admin.listen", "Address of /metrics, /healthz, /readyz and status routes", c.admin_listen);
  s.add("store.path", "SQLite database with streams and hashed stream keys", c.store_path);
  s.add("auth.token_keys",
        "Viewer token keys id:secret[,id:secret...]; the first signs, all verify (empty: one random key kept in "
        "token-keys beside store.path, mode 0600). Edges that run alone need the same value as the origin",
        c.token_keys);
  s.add("auth.visibility_refresh",
        "How often the origin rereads which streams need viewer tokens (a stream made token-only is protected "
        "within this time)",
        c.visibility_refresh, milliseconds(100), milliseconds(60000));
  s.add("io.threads", "I/O threads, one io_context each (0: one per core)", c.io_threads, 0, 256);
  s.add("shutdown.timeout", "Longest wait for sessions to end on SIGINT/SIGTERM", c.shutdown_timeout, milliseconds(100),
        milliseconds(60000));
  auto& i = c.ingest;
  s.add_endpoint("ingest.rtmp_listen", "RTMP listen address (use 0.0.0.0:1935 to take remote encoders)", i.rtmp_listen);
  s.add("ingest.max_connections", "Most RTMP connections open at once", i.max_connections, 1, 100000);
  s.add("ingest.handshake_timeout", "Time from accept until the publisher must have asked to publish",
        i.handshake_timeout, milliseconds(100), milliseconds(120000));
  s.add("ingest.idle_timeout", "A publisher that sends nothing for this long is disconnected", i.idle_timeout,
        milliseconds(100), milliseconds(600000));
  s.add("ingest.max_message_size", "Largest RTMP message accepted, in bytes", i.max_message_size, 1024, 64 * kMiB);
  s.add("ingest.max_chunk_size", "Largest RTMP chunk size a peer may set, in bytes", i.max_chunk_size, 128, 16 * kMiB);
  s.add("ingest.window_ack_size", "Acknowledgement window announced to publishers, in bytes", i.window_ack_size, 4096,
        0x7FFFFFFF);
  s.add("ingest.out_chunk_size", "Chunk size of messages the server sends", i.out_chunk_size, 128, 65536);
  s.add("ingest.max_timestamp_jump",
        "A timestamp step larger than this, forward or back, is a jump (see ingest.timestamp_jump)",
        i.max_timestamp_jump, milliseconds(100), milliseconds(3600000));
  s.add("ingest.timestamp_jump",
        "What a timestamp jump does: discontinuity (the media goes on from where it was, and the origin starts an "
        "EXT-X-DISCONTINUITY with a new init and a new DASH Period at the next keyframe) or rebase (the media goes "
        "on from where it was, nothing signalled)",
        i.timestamp_jump);
  s.add("ingest.record_dir", "When set, each publish is also written to <dir>/<stream>-<ms>.flv", i.record_dir);
  s.add("ingest.read_batch",
        "Wake for a publisher only once this much media is buffered (SO_RCVLOWAT at its bitrate): less CPU, "
        "up to this much added latency; 0 reads every byte at once",
        i.read_batch, milliseconds(0), milliseconds(200));
  s.add("ingest.max_stream_labels", "Most streams exported by name on /metrics", i.max_stream_labels, 1, 100000);
  s.add("ingest.relay",
        "Relay every publish to these RTMP servers: comma-separated rtmp://host[:port]/app[/name], {stream} in the "
        "name replaced by the stream (no name: the stream's name)",
        i.relay);
  s.add("ingest.relay_secret",
        "Sent with each relayed publish as <name>:<secret>; a transcode node takes relays whose secret matches its "
        "transcode.relay_secret",
        i.relay_secret);
  s.add("ingest.relay_queue_bytes", "Media queued per relay link; beyond, frames are dropped to the next keyframe",
        i.relay_queue_bytes, 64 * 1024, 1024 * kMiB);
  s.add("ingest.relay_timeout", "Longest relay connect-to-publish, and longest write, before the link reconnects",
        i.relay_timeout, milliseconds(100), milliseconds(60000));
  s.add("ingest.relay_max_backoff", "Longest wait between a relay link's reconnection attempts (doubling from 250 ms)",
        i.relay_max_backoff, milliseconds(250), milliseconds(600000));
  s.add("ingest.relay_clock",
        "Send relay peers this node's arrival clock (an @streamflex AMF0 data message before the media): a StreamFlex "
        "transcode node anchors program date time on it; other servers ignore it",
        i.relay_clock);
  auto& o = c.origin;
  s.add_endpoint("origin.listen", "HTTP address of LL-HLS, DASH and the player page", o.listen);
  s.add("origin.segment_target", "A segment starts on the first keyframe after this much media", o.segment_target,
        milliseconds(500), milliseconds(30000));
  s.add("origin.part_target", "LL-HLS part target duration", o.part_target, milliseconds(100), milliseconds(5000));
  s.add("origin.window_segments", "Complete segments listed in each playlist", o.window_segments, 3, 1000);
  s.add("origin.part_hold_back_parts", "PART-HOLD-BACK in part targets (at least 3 for Apple players)",
        o.part_hold_back_parts, 2, 20);
  s.add("origin.unpublish_grace", "How long a stream stays served after its publisher left", o.unpublish_grace,
        milliseconds(0), milliseconds(3600000));
  s.add("origin.max_streams", "Most streams an origin holds", o.max_streams, 1, 100000);
  s.add("origin.web_root", "Directory of the player page served at / (default: web/dist beside the build)", o.web_root);
  s.add("origin.ingest_secret", "Shared secret for CMAF pushed to /ingest/<stream>/ (empty: CMAF ingest off)",
        o.ingest_secret);
  s.add("origin.ingest_max_object", "Largest pushed CMAF unit (an init segment, or a moof with its mdat), in bytes",
        o.ingest_max_object, 1024, 512 * kMiB);
  s.add("origin.ingest_idle", "A pushed stream with no object for this long ends", o.ingest_idle, milliseconds(1000),
        milliseconds(600000));
  auto& e = c.edge;
  s.add_endpoint("edge.listen", "HTTP address players and CDNs use", e.listen);
  s.add("edge.upstreams",
        "Origins or shield edges, host:port, comma-separated, in order of preference (all: the origin)",
        c.edge_upstreams);
  s.add("edge.id", "This edge's name in Via headers, for loop detection (default: edge + its listen address)", e.id);
  s.add("edge.cache_bytes", "Memory cache size in bytes", e.cache_bytes, 1024 * 1024, 1LL << 40);
  s.add("edge.max_waiters", "Most requests waiting on one object's upstream fetch", e.max_waiters, 1, 1000000);
  s.add("edge.upstream_connections", "Keep-alive connections per upstream per I/O thread", e.upstream_connections, 1,
        10000);
  s.add("edge.upstream_held_connections",
        "The same for LL-HLS blocking requests, which the upstream holds (apart, so objects never queue behind them)",
        e.upstream_held_connections, 1, 100000);
  s.add("edge.upstream_timeout", "An upstream slower than this (ordinary fetch) is marked down", e.upstream_timeout,
        milliseconds(100), milliseconds(60000));
  s.add("edge.blocking_timeout", "Longest wait for an upstream LL-HLS blocking request", e.blocking_timeout,
        milliseconds(1000), milliseconds(120000));
  s.add("edge.health_interval", "How often each upstream's /healthz is probed", e.health_interval, milliseconds(100),
        milliseconds(60000));
  s.add("edge.health_timeout",
        "A /healthz answer slower than this marks the upstream down and retries its requests in flight elsewhere",
        e.health_timeout, milliseconds(50), milliseconds(60000));
  s.add("edge.hedge_parts",
        "A blocking playlist request not answered after this many of the stream's part targets is also sent to the "
        "next upstream, and the stream stays there (0: never)",
        e.hedge_parts, 0, 100);
  s.add("edge.max_connections", "Most player connections open at once", e.max_connections, 1, 1000000);
  s.add("edge.access_log",
        "Access log: one JSON line per served request (stream, rendition, object, status, bytes, ttfb_ms, cache) "
        "appended to this file, or - for standard output; empty: off",
        c.edge_access_log);
  auto& a = c.api;
  s.add_endpoint("api.listen", "HTTP address of the REST API and the dashboard", a.listen);
  s.add("api.web_root", "Directory of the dashboard served at / (default: web/dashboard/dist beside the build)",
        a.web_root);
  s.add("api.rtmp_url", "RTMP URL publishers are told, before the key (default: from ingest.rtmp_listen)", a.rtmp_url);
  s.add("api.playback_url", "Base URL of players' playlists (default: the edge, else the origin, of this process)",
        a.playback_url);
  s.add("api.ingest_admin_url",
        "Admin address of a separate ingest (http://host:port) for the streams' live state; in all, in-process",
        a.ingest_admin_url);
  s.add("api.max_body_bytes", "Largest API request body; larger ones get 413", a.max_body_bytes, 256, 16 * kMiB);
  s.add("api.workers", "Threads answering API requests (they may wait on the store)", a.workers, 1, 64);
  s.add("api.token_ttl", "Default lifetime of a viewer token", a.token_ttl, milliseconds(1000),
        milliseconds(30LL * 24 * 3600 * 1000));
  s.add("api.max_token_ttl", "Longest lifetime of a viewer token a client may ask for", a.max_token_ttl,
        milliseconds(1000), milliseconds(365LL * 24 * 3600 * 1000));
  s.add("api.rotate_grace", "How long a rotated stream key keeps working unless the call says otherwise",
        a.rotate_grace, milliseconds(0), milliseconds(30LL * 24 * 3600 * 1000));
  auto& w = c.webhooks;
  s.add("webhooks.on_publish", "URL asked before each publish; a 2xx answer allows it, others deny (empty: none)",
        w.on_publish);
  s.add("webhooks.on_publish_done", "URL told when a publish ends, retried with backoff (empty: none)",
        w.on_publish_done);
  s.add("webhooks.secret",
        "HMAC-SHA256 key of X-StreamFlex-Signature (empty: a random one kept in webhook-secret beside the store)",
        w.secret);
  s.add("webhooks.format", "Body of webhook calls: json, or form (as nginx-rtmp's on_publish)", w.format);
  s.add("webhooks.timeout", "Longest wait for a webhook's answer", w.timeout, milliseconds(100), milliseconds(60000));
  s.add("webhooks.on_publish_default", "Decision when on_publish does not answer in time: allow or deny",
        c.webhooks_on_publish_default);
  s.add("webhooks.max_attempts", "Attempts per notification before it is marked failed", w.max_attempts, 1, 100);
  s.add("webhooks.retry_base", "Wait before the first retry of a notification; doubled each time", w.retry_base,
        milliseconds(10), milliseconds(3600000));
  s.add("ingest.api_url",
        "Ingest without a store of its own: check publish keys with this API (http://host:port) instead",
        c.ingest_api_url);
  s.add("ingest.api_key", "API key (scope ingest) for ingest.api_url; also env STREAMFLEX_INGEST_API_KEY",
        c.ingest_api_key);
  s.add("ingest.api_cache", "How long ingest keeps an answer of ingest.api_url", c.ingest_api_cache, milliseconds(0),
        milliseconds(60000));
  auto& t = c.transcode;
  s.add("transcode.profile",
        "Ladder for each stream: default (1080p..160p), default-source (the source as a rung, then 1080p..160p below "
        "it), passthrough (video untouched; only non-AAC audio encoded to AAC), or one of transcode.profiles",
        t.profile);
  s.add("transcode.profiles",
        "More ladders: name=rung,rung;... with rung NAME:WxH@FPS:BITRATE[:MAXRATE[:PRESET[:PROFILE[:LEVEL]]]] or "
        "source (the source passed through as a rung)",
        t.profiles);
  s.add("transcode.encoder", "libavcodec H.264 encoder for the rungs (libx264; h264_nvenc, h264_vaapi where present)",
        t.encoder);
  s.add("transcode.audio",
        "Audio of transcoded streams: auto (AAC passes through, other codecs become AAC-LC 48 kHz stereo) or aac "
        "(always re-encoded to AAC-LC 48 kHz stereo)",
        t.audio);
  s.add("transcode.threads", "Encoding worker threads (0: one per core)", t.threads, 0, 1024);
  s.add("transcode.max_lag", "A stream this far behind real time drops its top rung", t.max_lag, milliseconds(200),
        milliseconds(60000));
  s.add("transcode.restore_hold",
        "A rung dropped for lag comes back once the stream has been this long comfortably ahead of real time (lag "
        "under max_lag/4, pool load with the rung at most restore_load)",
        t.restore_hold, milliseconds(100), milliseconds(3600000));
  s.add("transcode.restore_max_hold",
        "A rung dropped again within this long of coming back waits twice as long before the next try, up to this",
        t.restore_max_hold, milliseconds(100), milliseconds(86400000));
  s.add("transcode.restore_load",
        "Busy fraction of the worker pool, with the dropped rung's measured cost added, under which it may come back",
        t.restore_load, 0.05, 4.0);
  s.add("transcode.max_queue_frames",
        "Source frames queued per stream at most; beyond, frames are skipped to a keyframe", t.max_queue_frames, 2,
        10000);
  s.add("transcode.scaler",
        "Library that scales the rungs, bicubic either way: zimg (8-bit yuv420p sources; other formats go to "
        "swscale) or swscale",
        t.scaler);
  s.add("transcode.cascade",
        "Scale each rung from the next larger rung's picture instead of the source: cheaper, but lower PSNR (see "
        "bench/README.md)",
        t.cascade);
  s.add("transcode.max_stream_labels", "Most streams exported by name on /metrics", t.max_stream_labels, 1, 100000);
  s.add("transcode.listen",
        "The transcode role alone: RTMP address taking streams relayed by ingest nodes (their ingest.relay)",
        c.transcode_listen);
  s.add("transcode.relay_secret",
        "The transcode role alone: accept a relayed publish only when its name is <stream>:<this secret> (an "
        "ingest node's ingest.relay_secret); empty: any stream name is accepted (warned at start)",
        c.transcode_relay_secret);
  auto& p = c.push;
  s.add("transcode.origin_url",
        "The transcode role alone: the origin (http://host:port) every rung is pushed to as CMAF ingest "
        "(/ingest/<stream>/Streams(<rung>)); keyframes follow origin.segment_target, so set it as the origin does",
        p.origin_url);
  s.add("transcode.origin_secret",
        "Sent to transcode.origin_url as Authorization: Bearer (the origin's "
        "origin.ingest_secret)",
        p.secret);
  s.add("transcode.push_chunk",
        "Media per pushed CMAF chunk (a new chunk also starts at each keyframe); 0: one frame per chunk",
        p.chunk_duration, milliseconds(0), milliseconds(10000));
  s.add("transcode.push_queue_bytes",
        "Chunks waiting per pushed rung at most; beyond, they are dropped and the rung resumes at its next keyframe",
        p.queue_bytes, 64 * 1024, 1024 * kMiB);
  s.add("transcode.push_timeout", "Longest CMAF ingest request (connect included) before it counts as failed",
        p.timeout, milliseconds(100), milliseconds(60000));
  s.add("transcode.push_max_backoff", "Longest wait between attempts while the origin fails (doubling from 100 ms)",
        p.max_backoff, milliseconds(100), milliseconds(600000));
  s.add("demo.enabled", "In `all`, publish an ffmpeg test pattern with a clock as stream \"demo\"", c.demo_enabled);
  s.add("demo.ffmpeg", "The ffmpeg program the demo stream runs", c.demo_ffmpeg);
}

}  // namespace sf::app
