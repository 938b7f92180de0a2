#include "transcode_role.h"

#include <chrono>
#include <map>

#include "sf/core/log.h"
#include "sf/core/secure.h"

namespace sf::app {
namespace {

class RelayKeyStore final : public auth::KeyStore {
 public:
  explicit RelayKeyStore(std::string secret) : secret_(std::move(secret)) {}
  Result<std::string> create_key(std::string_view) override { return fail(errc::unsupported); }
  Result<auth::PublishGrant> check_publish_key(std::string_view key) override {
    auto colon = key.rfind(':');
    std::string_view name = colon == std::string_view::npos ? key : key.substr(0, colon);
    if (!secret_.empty()) {
      // Both sides of the comparison always run: the time does not tell which part was wrong.
      std::string_view given = colon == std::string_view::npos ? std::string_view() : key.substr(colon + 1);
      bool ok = constant_time_equal(given, secret_);
      if (!ok || colon == std::string_view::npos) return fail(errc::unauthorized);
    }
    if (!auth::valid_stream_name(name)) return fail(errc::unauthorized);
    auth::PublishGrant g;
    g.stream = std::string(name);
    g.key_id = "relay";
    g.takeover = true;  // an ingest node that reconnects replaces its own stale link
    return g;
  }
  Result<std::vector<auth::KeyInfo>> list_keys() override { return fail(errc::unsupported); }
  Result<int> revoke(std::string_view) override { return fail(errc::unsupported); }
  Result<void> set_takeover(std::string_view, bool) override { return fail(errc::unsupported); }

 private:
  std::string secret_;
};

// The relayed frames' arrivals during the publish's first seconds, marked on the stream's
// ArrivalAnchor in the relay's own callback (before the transcoder delays them): each pushed chunk
// carries its arrival by that anchor (prft), so the origin's program date time is when the media
// reached this node, one relay hop after the ingest node, instead of when its push reached the origin.
class Handler final : public ingest::PublishHandler {
 public:
  static constexpr std::int64_t kMarkMs = 5000;  // the origin settles its anchor at its first part, well within

  Handler(std::unique_ptr<transcode::StreamInput> in, std::shared_ptr<push::ArrivalAnchor> anchor)
      : in_(std::move(in)), anchor_(std::move(anchor)) {}
  void on_track(const media::TrackConfig& track) override {
    timescales_[track.track_id] = track.timescale;
    if (in_) in_->on_track(track);
  }
  void on_frame(const media::MediaFrame& frame) override {
    if (anchor_) {
      auto now =
          std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
              .count();
      if (first_ms_ < 0) first_ms_ = now;
      auto scale = timescales_.find(frame.track_id);
      if (now - first_ms_ > kMarkMs)
        anchor_.reset();  // done: no lock per frame from here on (the pusher keeps its reference)
      else if (scale != timescales_.end() && scale->second > 0)
        anchor_->mark(double(frame.dts) / scale->second, now);
    }
    if (in_) in_->on_frame(frame);
  }
  void on_stop(std::string_view) override { in_.reset(); }  // the queued frames flush, then the push ends

 private:
  std::unique_ptr<transcode::StreamInput> in_;
  std::shared_ptr<push::ArrivalAnchor> anchor_;
  std::map<std::uint32_t, std::uint32_t> timescales_;  // track id -> timescale
  std::int64_t first_ms_ = -1;
};

class PushFeeder final : public ingest::Observer {
 public:
  PushFeeder(transcode::Transcoder& t, push::Pusher& p, std::chrono::milliseconds grid)
      : transcoder_(t), pusher_(p), grid_(grid) {}
  std::unique_ptr<ingest::PublishHandler> on_publish_start(const ingest::PublishInfo& info) override {
    auto grid = info.segment_target_ms > 0 ? std::chrono::milliseconds(info.segment_target_ms) : grid_;
    auto anchor = std::make_shared<push::ArrivalAnchor>();
    return std::make_unique<Handler>(
        transcoder_.open_stream(info.stream, info.profile, pusher_.open_stream(info.stream, anchor), grid), anchor);
  }

 private:
  transcode::Transcoder& transcoder_;
  push::Pusher& pusher_;
  std::chrono::milliseconds grid_;
};

}  // namespace

std::unique_ptr<auth::KeyStore> make_relay_key_store(std::string secret) {
  return std::make_unique<RelayKeyStore>(std::move(secret));
}

std::shared_ptr<ingest::Observer> make_push_feeder(transcode::Transcoder& transcoder, push::Pusher& pusher,
                                                   std::chrono::milliseconds segment_target) {
  return std::make_shared<PushFeeder>(transcoder, pusher, segment_target);
}

}  // namespace sf::app
