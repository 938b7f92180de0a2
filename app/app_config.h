// The whole process's configuration: one struct per component, bound to keys, defaults and help
// in one place. The only place configuration is read; roles get their part as a snapshot.
#pragma once

#include <string>

#include "sf/api/api.h"
#include "sf/api/webhooks.h"
#include "sf/core/config.h"
#include "sf/edge/edge.h"
#include "sf/ingest/ingest.h"
#include "sf/origin/origin.h"
#include "sf/push/cmaf_pusher.h"
#include "sf/transcode/transcoder.h"

namespace sf::app {

struct AppConfig {
  std::string log_level = "info";
  std::string admin_listen = "127.0.0.1:9100";  // /metrics, /healthz, /readyz, /ingest/streams
  std::string store_path = "streamflex-data/streamflex.db";
  std::string token_keys;  // viewer token keys "id:secret,..."; empty: a random key persisted beside the store
  std::chrono::milliseconds visibility_refresh{1000};  // how often the origin rereads which streams need tokens
  std::int64_t io_threads = 0;                         // 0: one per core
  std::chrono::milliseconds shutdown_timeout{4500};
  ingest::Config ingest;
  origin::Config origin;
  edge::Config edge;
  transcode::Config transcode;  // keyframe_interval follows origin.segment_target
  // The transcode role alone: RTMP relays in (from ingest.relay), CMAF pushed to an origin.
  std::string transcode_listen = "127.0.0.1:1936";
  std::string transcode_relay_secret;  // checked against the <name>:<secret> of each relay
  push::Config push;                   // transcode.origin_url, transcode.origin_secret, transcode.push_*
  std::string edge_upstreams;          // comma-separated; in `all`, the in-process origin
  std::string edge_access_log;         // "" off, "-" standard output, else a file (JSON lines)
  api::Config api;
  api::WebhookConfig webhooks;
  std::string webhooks_on_publish_default = "deny";  // "allow" | "deny"
  std::string ingest_api_url;                        // ingest alone: ask this API for publish checks
  std::string ingest_api_key;                        // secret, scope "ingest"
  std::chrono::milliseconds ingest_api_cache{2000};
  bool demo_enabled = true;  // `all` only: publish a test pattern as stream "demo"
  std::string demo_ffmpeg = "ffmpeg";
};

void bind(ConfigSchema& schema, AppConfig& c);

}  // namespace sf::app
