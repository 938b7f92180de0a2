#include "admin.h"

#include <nlohmann/json.hpp>

namespace sf::app {
namespace {

nlohmann::json track_json(const media::TrackConfig& t) {
  nlohmann::json j{{"track_id", t.track_id}, {"codec", media::codec_name(t.codec)}, {"version", t.version}};
  if (t.video) {
    j["codec_string"] = t.video->codec_string;
    j["profile"] = t.video->profile;
    j["level"] = t.video->level;
    j["width"] = t.video->width;
    j["height"] = t.video->height;
  }
  if (t.audio) {
    j["codec_string"] = t.audio->codec_string;
    j["sample_rate"] = t.audio->sample_rate;
    j["channels"] = t.audio->channels;
    j["object_type"] = t.audio->object_type;
  }
  return j;
}

}  // namespace

void add_admin_routes(http::Server& server, Metrics& metrics, const std::atomic<bool>& ready,
                      const ingest::Ingest* ingest) {
  server.route("GET", "/metrics", [&metrics](const http::Request&) {
    http::Response r;
    r.content_type = "text/plain; version=0.0.4; charset=utf-8";
    r.body = metrics.serialize();
    return r;
  });
  server.route("GET", "/healthz", [](const http::Request&) { return http::Response::text(200, "ok\n"); });
  server.route("GET", "/readyz", [&ready](const http::Request&) {
    return ready ? http::Response::text(200, "ready\n") : http::Response::text(503, "not ready\n");
  });
  if (!ingest) return;
  server.route("GET", "/ingest/streams", [ingest](const http::Request&) {
    nlohmann::json list = nlohmann::json::array();
    for (auto& s : ingest->streams()) {
      nlohmann::json j{{"stream", s.info.stream},
                       {"key_id", s.info.key_id},
                       {"app", s.info.app},
                       {"remote", s.info.remote},
                       {"encoder", s.info.encoder},
                       {"started_ms", s.info.started_ms},
                       {"stats",
                        {{"bitrate_bps", s.stats.bitrate_bps},
                         {"fps", s.stats.fps},
                         {"keyframe_interval_s", s.stats.keyframe_interval_s},
                         {"bytes", s.stats.bytes},
                         {"video_frames", s.stats.video_frames},
                         {"audio_frames", s.stats.audio_frames},
                         {"keyframes", s.stats.keyframes},
                         {"dropped_frames", s.stats.dropped_frames},
                         {"late_frames", s.stats.late_frames},
                         {"timestamp_jumps", s.stats.timestamp_jumps}}}};
      if (s.video) j["video"] = track_json(*s.video);
      if (s.audio) j["audio"] = track_json(*s.audio);
      list.push_back(std::move(j));
    }
    return http::Response::json(200, nlohmann::json{{"streams", list}}.dump());
  });
}

}  // namespace sf::app
