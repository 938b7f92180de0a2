#include "transcode_role.h"

#include <algorithm>
#include <charconv>
#include <chrono>
#include <map>

#include "sf/auth/store.h"
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
    g.takeover = true;           // an ingest node that reconnects replaces its own stale link
    g.relay = !secret_.empty();  // authenticated: the timestamp jumps it announces are applied
    return g;
  }
  // The key, then (relays authenticated by the secret only) the stream's settings the relay sent
  // in the publish name's query (ingest::relay_settings_query).
  Result<auth::PublishGrant> check_publish(const auth::PublishRequest& req) override {
    auto grant = check_publish_key(req.key);
    if (grant && !secret_.empty() && !req.query.empty()) apply_settings(req.query, *grant);
    return grant;
  }
  Result<std::vector<auth::KeyInfo>> list_keys() override { return fail(errc::unsupported); }
  Result<int> revoke(std::string_view) override { return fail(errc::unsupported); }
  Result<void> set_takeover(std::string_view, bool) override { return fail(errc::unsupported); }

 private:
  // profile, latency, part_ms, segment_ms (unknown keys ignored), checked together with the
  // API's bounds (auth::validate_stream); anything invalid: none applied, logged.
  static void apply_settings(std::string_view query, auth::PublishGrant& grant) {
    auth::StreamRecord check;  // the API's defaults for what is not given
    check.name = grant.stream;
    bool profile = false, latency = false, part = false, segment = false;
    std::string why;
    auto number = [&why](std::string_view key, std::string_view text, std::int64_t& into) {
      auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), into);
      if (ec != std::errc{} || end != text.data() + text.size()) why = std::string(key) + ": not a number";
    };
    while (!query.empty()) {
      auto pair = query.substr(0, query.find('&'));
      query.remove_prefix(std::min(query.size(), pair.size() + 1));
      auto eq = pair.find('=');
      if (eq == std::string_view::npos) continue;
      auto key = pair.substr(0, eq), value = pair.substr(eq + 1);
      if (key == "profile") {
        check.profile = std::string(value);
        profile = true;
      } else if (key == "latency") {
        check.latency = std::string(value);
        latency = true;
      } else if (key == "part_ms") {
        number(key, value, check.part_target_ms);
        part = true;
      } else if (key == "segment_ms") {
        number(key, value, check.segment_target_ms);
        segment = true;
      }
    }
    if (!why.empty() || !auth::validate_stream(check, why)) {
      log::warn("transcode", "relayed stream settings ignored", {{"stream", grant.stream}, {"why", why}});
      return;
    }
    if (profile) grant.profile = check.profile == "default" ? std::string() : check.profile;
    if (latency) grant.latency = check.latency;
    if (part) grant.part_target_ms = check.part_target_ms;
    if (segment) grant.segment_target_ms = check.segment_target_ms;
    log::info("transcode", "relayed stream settings",
              {{"stream", grant.stream},
               {"profile", grant.profile},
               {"latency", grant.latency},
               {"part_target_ms", grant.part_target_ms},
               {"segment_target_ms", grant.segment_target_ms}});
  }

  std::string secret_;
};

std::int64_t wall_now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// Program date time across the push: each pushed chunk carries its arrival by the stream's
// ArrivalAnchor (prft), so the origin's program date time is when the media reached the platform,
// not when its push reached the origin. The anchor is the ingest node's arrival clock when the
// relay sends one ("@streamflex", ingest/relay.h) and it can be trusted (the relay secret is set,
// so the publish is an authenticated relay; within kMaxSkewMs of this node's clock); else the
// relayed frames' arrivals here during the publish's first seconds (one relay hop late), marked in
// the relay's own callback before the transcoder delays them.
class Handler final : public ingest::PublishHandler {
 public:
  static constexpr std::int64_t kMarkMs = 5000;      // the origin settles its anchor at its first part, well within
  static constexpr std::int64_t kMaxSkewMs = 30000;  // an ingest clock further off than this is not believed

  Handler(std::string stream, std::unique_ptr<transcode::StreamInput> in, std::shared_ptr<push::ArrivalAnchor> anchor,
          bool trust_clock)
      : stream_(std::move(stream)), in_(std::move(in)), anchor_(std::move(anchor)), trust_clock_(trust_clock) {}
  void on_track(const media::TrackConfig& track) override {
    timescales_[track.track_id] = track.timescale;
    if (in_) in_->on_track(track);
  }
  void on_frame(const media::MediaFrame& frame) override {
    if (anchor_) {
      auto now = wall_now_ms();
      if (first_ms_ < 0) first_ms_ = now;
      auto scale = timescales_.find(frame.track_id);
      if (now - first_ms_ > kMarkMs)
        anchor_.reset();  // done: no lock per frame from here on (the pusher keeps its reference)
      else if (!remote_clock_ && scale != timescales_.end() && scale->second > 0)
        anchor_->mark(double(frame.dts) / scale->second, now);
    }
    if (in_) in_->on_frame(frame);
  }
  void on_relay_clock(std::int64_t media_ms, std::int64_t wall_ms) override {
    if (!anchor_) return;
    if (!trust_clock_) {
      if (!clock_refused_)
        log::warn("transcode", "relay clock ignored: transcode.relay_secret is empty, relays are not authenticated",
                  {{"stream", stream_}});
      clock_refused_ = true;
      return;
    }
    auto skew = wall_ms - wall_now_ms();
    if (skew > kMaxSkewMs || skew < -kMaxSkewMs) {
      if (!clock_refused_)
        log::warn("transcode", "relay clock ignored: more than 30 s from this node's clock",
                  {{"stream", stream_}, {"skew_ms", skew}});
      clock_refused_ = true;
      return;
    }
    if (!remote_clock_)
      log::info("transcode", "program date time from the ingest node's arrival clock",
                {{"stream", stream_}, {"media_ms", media_ms}, {"skew_ms", skew}});
    remote_clock_ = true;
    anchor_->mark(double(media_ms) / 1000, wall_ms);
  }
  void on_stop(std::string_view) override { in_.reset(); }  // the queued frames flush, then the push ends

 private:
  std::string stream_;
  std::unique_ptr<transcode::StreamInput> in_;
  std::shared_ptr<push::ArrivalAnchor> anchor_;
  std::map<std::uint32_t, std::uint32_t> timescales_;  // track id -> timescale
  std::int64_t first_ms_ = -1;
  bool trust_clock_;
  bool remote_clock_ = false;  // the ingest node's clock anchors: own arrivals are not marked
  bool clock_refused_ = false;
};

class PushFeeder final : public ingest::Observer {
 public:
  PushFeeder(transcode::Transcoder& t, push::Pusher& p, std::chrono::milliseconds grid, bool trust_clock)
      : transcoder_(t), pusher_(p), grid_(grid), trust_clock_(trust_clock) {}
  std::unique_ptr<ingest::PublishHandler> on_publish_start(const ingest::PublishInfo& info) override {
    auto grid = info.segment_target_ms > 0 ? std::chrono::milliseconds(info.segment_target_ms) : grid_;
    auto anchor = std::make_shared<push::ArrivalAnchor>();
    return std::make_unique<Handler>(
        info.stream,
        transcoder_.open_stream(
            info.stream, info.profile,
            pusher_.open_stream(info.stream, anchor, {info.latency, info.part_target_ms, info.segment_target_ms}),
            grid),
        anchor, trust_clock_);
  }

 private:
  transcode::Transcoder& transcoder_;
  push::Pusher& pusher_;
  std::chrono::milliseconds grid_;
  bool trust_clock_;
};

}  // namespace

std::unique_ptr<auth::KeyStore> make_relay_key_store(std::string secret) {
  return std::make_unique<RelayKeyStore>(std::move(secret));
}

std::shared_ptr<ingest::Observer> make_push_feeder(transcode::Transcoder& transcoder, push::Pusher& pusher,
                                                   std::chrono::milliseconds segment_target, bool trust_relay_clock) {
  return std::make_shared<PushFeeder>(transcoder, pusher, segment_target, trust_relay_clock);
}

}  // namespace sf::app
