#include "feeders.h"

#include <chrono>
#include <utility>
#include <vector>

#include "sf/core/log.h"

namespace sf::app {
namespace {

// Marks the arrivals of the publish's frames on the origin's ArrivalClock during its first
// seconds, in ingest's own callback: program date time then starts from the arrival (ahead of a
// transcoder's delay), taken from the frames that waited least on their way in.
class ArrivalMark {
 public:
  static constexpr std::int64_t kMarkMs = 5000;  // the packager settles at its first part, well within

  explicit ArrivalMark(std::shared_ptr<origin::ArrivalClock> clock) : clock_(std::move(clock)) {}
  void on_track(const media::TrackConfig& track) {
    for (auto& [id, scale] : timescales_)
      if (id == track.track_id) {
        scale = track.timescale;
        return;
      }
    timescales_.emplace_back(track.track_id, track.timescale);
  }
  void on_frame(const media::MediaFrame& frame) {
    if (!clock_) return;
    for (auto& [id, scale] : timescales_) {
      if (id != frame.track_id || scale == 0) continue;
      auto now = std::chrono::duration_cast<std::chrono::milliseconds>(
                     std::chrono::system_clock::now().time_since_epoch())
                     .count();
      if (first_ms_ < 0) first_ms_ = now;
      if (now - first_ms_ > kMarkMs) {
        clock_.reset();  // done: no lock per frame from here on
        return;
      }
      clock_->mark(double(frame.dts) / scale, now);
      return;
    }
  }

 private:
  std::shared_ptr<origin::ArrivalClock> clock_;
  std::vector<std::pair<std::uint32_t, std::uint32_t>> timescales_;  // track id, timescale
  std::int64_t first_ms_ = -1;
};

class OriginSink final : public transcode::Sink {
 public:
  explicit OriginSink(std::unique_ptr<origin::StreamSink> sink) : sink_(std::move(sink)) {}
  void on_track(const media::TrackConfig& track) override { sink_->on_track(track); }
  void on_frame(const media::MediaFrame& frame) override { sink_->on_frame(frame); }
  // A withdrawn rung simply stops: the packager sees it fall behind its leader and takes it out of
  // the multivariant playlist and the MPD.

 private:
  std::unique_ptr<origin::StreamSink> sink_;
};

class OriginHandler final : public ingest::PublishHandler {
 public:
  OriginHandler(std::unique_ptr<origin::StreamSink> sink, ArrivalMark mark)
      : sink_(std::move(sink)), mark_(std::move(mark)) {}
  void on_track(const media::TrackConfig& track) override {
    mark_.on_track(track);
    sink_->on_track(track);
  }
  void on_frame(const media::MediaFrame& frame) override {
    mark_.on_frame(frame);
    sink_->on_frame(frame);
  }
  void on_stop(std::string_view) override { sink_.reset(); }

 private:
  std::unique_ptr<origin::StreamSink> sink_;
  ArrivalMark mark_;
};

class TranscodeHandler final : public ingest::PublishHandler {
 public:
  TranscodeHandler(std::unique_ptr<transcode::StreamInput> in, ArrivalMark mark)
      : in_(std::move(in)), mark_(std::move(mark)) {}
  void on_track(const media::TrackConfig& track) override {
    mark_.on_track(track);
    if (in_) in_->on_track(track);
  }
  void on_frame(const media::MediaFrame& frame) override {
    mark_.on_frame(frame);
    if (in_) in_->on_frame(frame);
  }
  void on_stop(std::string_view) override { in_.reset(); }

 private:
  std::unique_ptr<transcode::StreamInput> in_;
  ArrivalMark mark_;
};

class OriginFeeder final : public ingest::Observer {
 public:
  OriginFeeder(origin::Origin& o, transcode::Transcoder* t, ProfileFor profile_for)
      : origin_(o), transcoder_(t), profile_for_(std::move(profile_for)) {}
  std::unique_ptr<ingest::PublishHandler> on_publish_start(const ingest::PublishInfo& info) override {
    origin::StreamSettings settings;
    settings.low_latency = info.latency != "hls";
    settings.part_target = std::chrono::milliseconds(info.part_target_ms);
    settings.segment_target = std::chrono::milliseconds(info.segment_target_ms);
    auto arrival = std::make_shared<origin::ArrivalClock>();
    settings.arrival = arrival;
    auto sink = origin_.open_stream(info.stream, settings);
    if (!sink) {
      log::warn("app", "origin is full: stream not packaged", {{"stream", info.stream}});
      return nullptr;
    }
    if (!transcoder_) return std::make_unique<OriginHandler>(std::move(sink), ArrivalMark(arrival));
    std::string profile = profile_for_ ? profile_for_(info) : std::string();
    return std::make_unique<TranscodeHandler>(
        transcoder_->open_stream(info.stream, profile, make_origin_sink(std::move(sink)), settings.segment_target),
        ArrivalMark(arrival));
  }

 private:
  origin::Origin& origin_;
  transcode::Transcoder* transcoder_;
  ProfileFor profile_for_;
};

}  // namespace

std::shared_ptr<transcode::Sink> make_origin_sink(std::unique_ptr<origin::StreamSink> sink) {
  return std::make_shared<OriginSink>(std::move(sink));
}

std::shared_ptr<ingest::Observer> make_origin_feeder(origin::Origin& origin, transcode::Transcoder* transcoder,
                                                     ProfileFor profile_for) {
  return std::make_shared<OriginFeeder>(origin, transcoder, std::move(profile_for));
}

}  // namespace sf::app
