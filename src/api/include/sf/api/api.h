// The control plane's REST API (role `api`): streams and their settings, stream keys, viewer
// tokens, API keys and webhook deliveries, as JSON over the project's HTTP server, described by
// the OpenAPI 3 document at /api/openapi.json; and the dashboard's files at /.
// - Every /api/ route but the document needs "Authorization: Bearer <api key>": 401 without a
//   valid key, 403 when its scopes do not cover the route (see routes()).
// - Handlers run on a small worker pool, never on I/O threads: the store and the live-state
//   source may block. Requests wait for a worker up to a bound, then get 503.
// - Errors are {"error": "..."} with 400, 401, 403, 404, 405, 409, 413 or 503.
// Construct, start() and stop() from the main thread; the store must outlive the Api.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "sf/auth/key_store.h"
#include "sf/auth/store.h"
#include "sf/net/io_pool.h"

namespace sf::api {

struct Config {
  std::string listen = "127.0.0.1:8090";
  std::string web_root;                     // dashboard files served at /; empty: none
  std::string rtmp_url;                     // what publishers are told (+ "/" + key); "": rtmp://127.0.0.1:1935/live
  std::string playback_url;                 // players: + "/live/<name>/master.m3u8"; "": http://127.0.0.1:8081
  std::string ingest_admin_url;             // live state from a remote ingest's admin
  std::vector<std::string> profiles;        // known ladder profiles; empty: any valid name
  std::int64_t max_body_bytes = 64 * 1024;  // larger request bodies: 413
  std::int64_t workers = 2;                 // threads for handlers
  std::chrono::milliseconds token_ttl{3600 * 1000};  // default viewer token lifetime
  std::chrono::milliseconds max_token_ttl{7 * 24 * 3600 * 1000LL};
  std::chrono::milliseconds rotate_grace{300 * 1000};  // default grace of a rotated stream key
};

// A publish as ingest reports it (app/admin.cpp /ingest/streams).
struct LiveState {
  std::int64_t since_ms = 0;
  double bitrate_bps = 0, fps = 0, keyframe_interval_s = 0;
  int width = 0, height = 0;
  std::string video_codec, audio_codec;
  std::optional<std::int64_t> viewers;  // players now (from an edge in this process); none: not counted here
};
// Live publishes by stream name. Called on a worker thread; may block briefly.
using LiveSource = std::function<std::map<std::string, LiveState>()>;
// Live state from a remote ingest's admin address (GET <url>/ingest/streams), cached ~1 s.
LiveSource remote_live_source(std::string admin_url);

// Signs a viewer token for `stream` valid until `expires_unix_s`, optionally bound to a client IP.
using TokenIssuer =
    std::function<std::string(std::string_view stream, std::int64_t expires_unix_s, std::string_view client_ip)>;

// Ends the live publish of `stream` with the key `key_id` (any key when empty), giving `reason`.
// Called on a worker thread once a key is revoked or its stream deleted (a rotation cuts no one:
// a rotated key's publisher, already live, keeps going past the grace period).
using Disconnect = std::function<void(std::string_view stream, std::string_view key_id, std::string_view reason)>;

struct RouteInfo {
  std::string method;
  std::string path;                 // OpenAPI template, "/api/streams/{name}"
  std::vector<std::string> scopes;  // any of these suffices (admin has all); empty: any valid key
  bool authenticated = true;
};
// Every route the API answers (the OpenAPI document must list exactly these).
const std::vector<RouteInfo>& routes();
// The OpenAPI 3 document.
const std::string& openapi_document();

class Api {
 public:
  // `publish_check` answers POST /api/ingest/check (the store, or a decorator of it with webhooks).
  Api(net::IoPool& pool, Config config, auth::Store& store, auth::KeyStore& publish_check, LiveSource live,
      TokenIssuer tokens);
  ~Api();
  Api(const Api&) = delete;
  Api& operator=(const Api&) = delete;

  void set_disconnect(Disconnect disconnect);  // before start(); without it nobody is cut
  void start();
  void stop();
  std::uint16_t port() const;

  struct Impl;

 private:
  std::shared_ptr<Impl> impl_;
};

}  // namespace sf::api
